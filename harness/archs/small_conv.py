"""``small_conv``: a small convolutional autoencoder for CPU-scale runs (not in the paper).

The paper's own architectures (A1 ~38M, A2 ~24M parameters; appendix A) are far too large
to train on a couple of CPU cores, so the harness's default is this small net. With the
default ``width`` w = 32 and ``latent_dim`` 64 it has about 450k parameters on 28x28
MNIST-size inputs.

Encoder: 3x3 stride-2 convolutions (padding 1, so a side n becomes ⌈n/2⌉) with ReLU, as
many as it takes to bring the side down to at most 4 (3 for 28 and 32 pixels, 4 for 64,
6 for 256), with w, 2w, 4w, 4w, ... channels; then flatten and a linear layer to the raw
``latent_dim`` vector (the prior projects it, e.g. onto the sphere).

Decoder: the mirror image - a linear layer and ReLU back to the last feature map, then 3x3
stride-2 transposed convolutions through the encoder's sides in reverse (so 28 -> 14 -> 7 ->
4 comes back as 4 -> 7 -> 14 -> 28), ReLU between them, and a sigmoid on the last one so
pixels lie in [0, 1].

No batch norm: it would make an item's latent depend on the other items of its batch (the
leak that MoCo's shuffled BN guards against) and on train/eval mode; at this depth plain
ReLU convolutions train well without it.
"""

from __future__ import annotations

from torch import Tensor, nn

from harness.archs._base import ARCHS, AutoEncoder
from harness.archs._blocks import ConvConfig, conv_check_run, Unflatten, deconv3x3_to, halvings_to, image_shape

FINAL_SIDE = 4  # the encoder halves the input until its side is at most this


class SmallConvEncoder(nn.Module):
    def __init__(self, channels: list[int], sides: list[int], latent_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels[-1] * sides[-1] ** 2, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))


class SmallConvDecoder(nn.Module):
    def __init__(self, channels: list[int], sides: list[int], latent_dim: int):
        super().__init__()
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, channels[-1] * sides[-1] ** 2),
            nn.ReLU(inplace=True),
            Unflatten(channels[-1], sides[-1]),
        )
        layers: list[nn.Module] = []
        for i in reversed(range(len(channels) - 1)):
            layers.append(deconv3x3_to(channels[i + 1], channels[i], sides[i + 1], sides[i]))
            layers.append(nn.ReLU(inplace=True) if i > 0 else nn.Sigmoid())
        self.features = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.features(self.fc(z))


@ARCHS.register("small_conv", Config=ConvConfig, check_run=conv_check_run("small_conv"))
def build_small_conv(model_cfg, input_shape: tuple[int, ...]) -> AutoEncoder:
    """Small conv autoencoder for (C, H, H) images; ``width`` is the first layer's channels."""
    c, side = image_shape(input_shape, "small_conv")
    sides = halvings_to(side, FINAL_SIDE)
    w = model_cfg.width
    channels = [c] + [w * 2 ** min(i, 2) for i in range(len(sides) - 1)]
    return AutoEncoder(
        SmallConvEncoder(channels, sides, model_cfg.latent_dim),
        SmallConvDecoder(channels, sides, model_cfg.latent_dim),
    )
