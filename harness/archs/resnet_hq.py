"""``resnet_hq``: the residual autoencoder of the paper's CelebA-HQ experiments.

MoCA appendix A: "The base ResNet-18 architecture has 4 residual blocks, each containing 2
convolutional layers and an additional convolutional layer which spatially downsamples its
input by a factor of 2. For the encoder, we use the same architecture, but with 6 blocks
(to downsample a 256x256 image to 4x4, which we then flatten and project into the latent
space). The decoder is a mirrored version of the encoder, but with de-convolution
upsampling layers instead of downsampling layers. The latent space of this architecture is
128 dimensional." Appendix D.2: smaller inputs remove one block per halving of the size.

Read literally, one residual block is torchvision's ``BasicBlock`` with stride 2: two 3x3
convolutions (the first strided) plus the 1x1 stride-2 shortcut convolution. So:

* encoder: stem 3x3 conv (C -> w) -> BN -> ReLU at full resolution, then one stride-2
  ``BasicBlock`` per halving until the side is at most 4 (6 for 256, 5 for 128, 4 for 64,
  3 for 32 and 28), channels w * 2^(i+1) capped at 16w, then flatten and a linear layer to
  the raw ``latent_dim`` vector;
* decoder: linear layer back to that map -> BN -> ReLU, one :class:`UpBasicBlock` per
  encoder block in reverse, each upsampling with a 3x3 stride-2 transposed convolution
  (the "de-convolution") to the side its encoder block started from, then a 3x3 conv to C
  channels (mirror of the stem) and a sigmoid.

``width`` w is the stem's channel count; blocks have 2w, 4w, 8w, 16w, 16w, 16w channels,
i.e. 64 ... 512 at the default w = 32 (ResNet-18's widths). Parameters at latent 128, 3
channels, w = 32: 31.8M at 256x256, 21.8M at 128, 11.9M at 64.
"""

from __future__ import annotations

from torch import Tensor, nn

from harness.archs._base import ARCHS, AutoEncoder
from harness.archs._blocks import ConvConfig, conv_check_run, Unflatten, UpBasicBlock, down_block, halvings_to, image_shape, init_resnet_

FINAL_SIDE = 4  # the encoder halves until the side is at most this (256 -> 4 in 6 blocks)
MAX_WIDTH_FACTOR = 16  # channels stop doubling at 16w (512 at w = 32, as in ResNet-18)


def plan(side: int, width: int) -> tuple[list[int], list[int]]:
    """Sides before/after each block (input first) and channels (stem first)."""
    sides = halvings_to(side, FINAL_SIDE)
    channels = [width] + [width * min(2 ** (i + 1), MAX_WIDTH_FACTOR) for i in range(len(sides) - 1)]
    return sides, channels


class HQEncoder(nn.Module):
    def __init__(self, in_ch: int, side: int, latent_dim: int, width: int):
        super().__init__()
        sides, ch = plan(side, width)
        self.stem = nn.Sequential(
            nn.Conv2d(in_ch, ch[0], 3, padding=1, bias=False), nn.BatchNorm2d(ch[0]), nn.ReLU(inplace=True)
        )
        self.blocks = nn.Sequential(*[down_block(ch[i], ch[i + 1], stride=2) for i in range(len(ch) - 1)])
        self.fc = nn.Linear(ch[-1] * sides[-1] ** 2, latent_dim)
        init_resnet_(self)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.blocks(self.stem(x)).flatten(1))


class HQDecoder(nn.Module):
    def __init__(self, out_ch: int, side: int, latent_dim: int, width: int):
        super().__init__()
        sides, ch = plan(side, width)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, ch[-1] * sides[-1] ** 2),
            Unflatten(ch[-1], sides[-1]),
            nn.BatchNorm2d(ch[-1]),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.Sequential(*[
            UpBasicBlock(ch[i + 1], ch[i], sides[i + 1], sides[i], mode="deconv")
            for i in reversed(range(len(ch) - 1))
        ])
        self.head = nn.Sequential(nn.Conv2d(ch[0], out_ch, 3, padding=1), nn.Sigmoid())
        init_resnet_(self)

    def forward(self, z: Tensor) -> Tensor:
        return self.head(self.blocks(self.fc(z)))


@ARCHS.register("resnet_hq", Config=ConvConfig, check_run=conv_check_run("resnet_hq"))
def build_resnet_hq(model_cfg, input_shape: tuple[int, ...]) -> AutoEncoder:
    """The CelebA-HQ residual autoencoder for (C, H, H) images (one block per halving)."""
    c, side = image_shape(input_shape, "resnet_hq")
    return AutoEncoder(
        HQEncoder(c, side, model_cfg.latent_dim, model_cfg.width),
        HQDecoder(c, side, model_cfg.latent_dim, model_cfg.width),
    )
