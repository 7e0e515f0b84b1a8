"""``a2``: ResNet-18 encoder with a 3x3 first convolution, and its mirror as decoder.

MoCA appendix A: "The encoder of the network architecture A2 is a modification of the
standard ResNet-18 architecture (He et al., 2016) in that the first convolutional layer has
filters of size 3x3, and the final fully connected layer has latent dimension 128. The
decoder architecture is a mirrored version of the encoder with upsampling instead of
downsampling. Additionally, the final convolutional layer uses an upscaling factor of 1 for
CIFAR-10 and 2 for CelebA. The architecture roughly has around 24 million parameters."

Encoder: torchvision's ResNet-18 layout built from its ``BasicBlock`` (attribute names
``conv1, bn1, relu, layer1..layer4, avgpool, fc`` as in ``torchvision.models.ResNet``, so at
``width`` 32 a torchvision ``resnet18`` state dict with the same conv1 loads into it):
conv1 3x3 (2w channels) -> BN -> ReLU, no max-pool (the CIFAR ResNet), four stages of two
blocks with 2w, 4w, 8w, 16w channels (64 ... 512 at the default w = 32), the last three
halving the side, global average pooling, and ``fc`` to the raw ``latent_dim`` vector.
conv1 has stride 1 for inputs up to 32 pixels and stride 2 above (CelebA's 64), which is
what the decoder's final x1 / x2 upscaling mirrors.

Decoder, the mirror: a linear layer to a 16w-channel map of the encoder's last side (4x4
for 28, 32 and 64 pixels) -> BN -> ReLU; stages with 16w, 8w, 4w, 2w channels made of
:class:`UpBasicBlock` (the block read backwards; the last block of each of the first three
stages upsamples by nearest-neighbour resize + 3x3 convolution to the side the matching
encoder stage had); then the final layer: resize x1 (<= 32 pixels) or x2 (above) and a
3x3 convolution to C channels, sigmoid. The linear layer projects to a spatial map rather
than a 1x1 vector so that the decoder need not invent spatial structure from a constant map.

Parameters at latent 128, 3 channels, w = 32 (the same at 32x32 and 64x64, since conv1's
stride adds none): encoder 11.23M, decoder 12.22M, total 23.46M (the paper: about 24M). Larger
inputs keep working but grow the decoder's linear layer with the encoder's last side
(256 pixels: a 16x16 map, 16.8M more); for those the paper uses ``resnet_hq``.

``width`` scales every channel count (w = 32 is ResNet-18's 64 ... 512).
"""

from __future__ import annotations

import math

from torch import Tensor, nn

from harness.archs._base import ARCHS, AutoEncoder
from harness.archs._blocks import ConvConfig, conv_check_run, Unflatten, UpBasicBlock, image_shape, init_resnet_, resnet_stage

BLOCKS_PER_STAGE = 2  # ResNet-18: [2, 2, 2, 2]
CIFAR_SIDE = 32  # up to this side conv1 has stride 1, above it stride 2


def first_stride(side: int) -> int:
    return 1 if side <= CIFAR_SIDE else 2


def stage_sides(side: int) -> list[int]:
    """Sides: input, after conv1 (= layer1), after layer2, layer3, layer4."""
    sides = [side, math.ceil(side / first_stride(side))]
    for _ in range(3):
        sides.append(math.ceil(sides[-1] / 2))
    return sides


class ResNet18Encoder(nn.Module):
    def __init__(self, in_ch: int, side: int, latent_dim: int, width: int):
        super().__init__()
        planes = [2 * width, 4 * width, 8 * width, 16 * width]
        self.conv1 = nn.Conv2d(in_ch, planes[0], 3, stride=first_stride(side), padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes[0])
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.Identity()
        self.layer1 = resnet_stage(planes[0], planes[0], BLOCKS_PER_STAGE, stride=1)
        self.layer2 = resnet_stage(planes[0], planes[1], BLOCKS_PER_STAGE, stride=2)
        self.layer3 = resnet_stage(planes[1], planes[2], BLOCKS_PER_STAGE, stride=2)
        self.layer4 = resnet_stage(planes[2], planes[3], BLOCKS_PER_STAGE, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(planes[3], latent_dim)
        init_resnet_(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.avgpool(x).flatten(1))


def up_stage(in_ch: int, out_ch: int, in_side: int, out_side: int) -> nn.Sequential:
    """Mirror of a ResNet stage: same-shape blocks first, the resizing block last."""
    blocks = [UpBasicBlock(in_ch, in_ch) for _ in range(BLOCKS_PER_STAGE - 1)]
    blocks.append(UpBasicBlock(in_ch, out_ch, in_side, out_side, mode="nearest"))
    return nn.Sequential(*blocks)


class ResNet18Decoder(nn.Module):
    def __init__(self, out_ch: int, side: int, latent_dim: int, width: int):
        super().__init__()
        planes = [2 * width, 4 * width, 8 * width, 16 * width]
        s = stage_sides(side)
        self.fc = nn.Sequential(
            nn.Linear(latent_dim, planes[3] * s[4] ** 2),
            Unflatten(planes[3], s[4]),
            nn.BatchNorm2d(planes[3]),
            nn.ReLU(inplace=True),
        )
        self.layer4 = up_stage(planes[3], planes[2], s[4], s[3])
        self.layer3 = up_stage(planes[2], planes[1], s[3], s[2])
        self.layer2 = up_stage(planes[1], planes[0], s[2], s[1])
        self.layer1 = up_stage(planes[0], planes[0], s[1], s[1])
        resize = [nn.Upsample(size=(side, side), mode="nearest")] if s[1] != side else []
        self.conv1 = nn.Sequential(*resize, nn.Conv2d(planes[0], out_ch, 3, padding=1))
        self.sigmoid = nn.Sigmoid()
        init_resnet_(self)

    def forward(self, z: Tensor) -> Tensor:
        x = self.fc(z)
        x = self.layer1(self.layer2(self.layer3(self.layer4(x))))
        return self.sigmoid(self.conv1(x))


@ARCHS.register("a2", Config=ConvConfig, check_run=conv_check_run("a2"))
def build_a2(model_cfg, input_shape: tuple[int, ...]) -> AutoEncoder:
    """MoCA's A2 (ResNet-18 autoencoder) for (C, H, H) images."""
    c, side = image_shape(input_shape, "a2")
    return AutoEncoder(
        ResNet18Encoder(c, side, model_cfg.latent_dim, model_cfg.width),
        ResNet18Decoder(c, side, model_cfg.latent_dim, model_cfg.width),
    )
