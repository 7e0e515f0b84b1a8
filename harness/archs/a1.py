"""``a1``: the WAE convolutional autoencoder of Tolstikhin et al. (2017) with batch norm everywhere.

MoCA appendix A: "A1 is identical to the CNN architecture used in Tolstikhin et al. (2017)
except that we use batch norm in every layer (similar to Ghosh et al. (2019)), and the
latent dimension is 128 for the CelebA dataset. This architecture roughly has around 38
million parameters."

CelebA (64x64), with the default ``width`` w = 32 (so 4w = 128 ... 32w = 1024):

* encoder: Conv128 -> BN -> ReLU -> Conv256 -> BN -> ReLU -> Conv512 -> BN -> ReLU ->
  Conv1024 -> BN -> ReLU -> flatten (4x4x1024) -> FC to ``latent_dim``;
* decoder: FC to 8x8x1024 -> BN -> ReLU -> ConvT512 -> BN -> ReLU -> ConvT256 -> BN ->
  ReLU -> ConvT128 -> BN -> ReLU -> Conv to C -> sigmoid.

Conv are 4x4 stride-2 convolutions with TensorFlow "SAME" padding (side n -> ⌈n/2⌉, as in
the reference code), ConvT are 4x4 stride-2 transposed convolutions (padding 1, side
doubles), the last layer a 3x3 stride-1 convolution. "Batch norm in every layer" means
every hidden layer; the two output layers (the latent and the image) have none, since it
would fix their batch statistics. Convolutions followed by batch norm have no bias (BN
removes it; it would get no gradient).

Parameter count: with 4x4 kernels this network has 32.59M parameters at 64x64 with latent
128, 14% below the paper's "around 38M". The WAE reference code's CelebA configuration
(github.com/tolstikhin/wae, configs.py: conv_filters_dim = 5) uses 5x5 kernels, which would
give 44.9M, 18% above; the paper does not say which it counted. This module keeps the 4x4
kernels of the WAE MNIST configuration and of the common PyTorch port (1Konny/WAE-pytorch),
which the project's brief specifies.

Other sizes (Tolstikhin et al.'s MNIST variant generalised): the encoder has at least 4
stride-2 convolutions and more while the side is above 4 (4 for 28, 32, 64; 5 for 128; 6
for 256), channels doubling up to 32w in the last one; the decoder starts at side H/2^m
with m >= 2 upsamplings, the fewest that bring the start side to at most 8 (m = 2 for 28
and 32, the WAE MNIST and CIFAR decoders starting at 7x7 and 8x8; 3 for 64; 5 for 256),
channels halving from 32w. H must be divisible by 2^m (ConfigError otherwise).

``width`` scales every channel count (w = 32 is the paper's network; smaller w gives a
proportionally thinner one for quick runs).
"""

from __future__ import annotations

from torch import Tensor, nn

from harness.archs._base import ARCHS, AutoEncoder
from harness.archs._blocks import ConvConfig, conv_check_run, Unflatten, conv_same, halvings, halvings_to, image_shape
from harness.errors import ConfigError

KERNEL = 4
MIN_ENCODER_LAYERS = 4  # Conv128, Conv256, Conv512, Conv1024
MIN_DECODER_UPSAMPLINGS = 2  # ConvT512, ConvT256 (WAE MNIST); CelebA adds ConvT128
MAX_START_SIDE = 8  # the CelebA decoder starts from an 8x8 map


def decoder_upsamplings(side: int) -> int:
    """m: the fewest doublings (at least 2) from a start side <= 8 to ``side``; ConfigError if none."""
    m = MIN_DECODER_UPSAMPLINGS
    while side / 2**m > MAX_START_SIDE:
        m += 1
    if side % 2**m:
        raise ConfigError(
            "model.arch",
            f"got 'a1' for image side {side}; allowed: sides divisible by {2**m} "
            f"(the decoder doubles a {side / 2**m:g}-pixel start map {m} times), e.g. 28, 32, 64, 256",
        )
    return m


class A1Encoder(nn.Module):
    def __init__(self, in_ch: int, side: int, latent_dim: int, width: int):
        super().__init__()
        n = max(MIN_ENCODER_LAYERS, len(halvings_to(side, 4)) - 1)
        sides = halvings(side, n)
        channels = [in_ch] + [max(1, 32 * width >> (n - 1 - i)) for i in range(n)]
        layers: list[nn.Module] = []
        for i in range(n):
            layers += [
                conv_same(channels[i], channels[i + 1], KERNEL, sides[i], bias=False),
                nn.BatchNorm2d(channels[i + 1]),
                nn.ReLU(inplace=True),
            ]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(channels[-1] * sides[-1] ** 2, latent_dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x).flatten(1))


class A1Decoder(nn.Module):
    def __init__(self, out_ch: int, side: int, latent_dim: int, width: int):
        super().__init__()
        m = decoder_upsamplings(side)
        start = side // 2**m
        channels = [max(1, 32 * width >> j) for j in range(m + 1)]  # 1024, 512, 256, (128)
        layers: list[nn.Module] = [
            nn.Linear(latent_dim, channels[0] * start**2),
            Unflatten(channels[0], start),
            nn.BatchNorm2d(channels[0]),
            nn.ReLU(inplace=True),
        ]
        for c_in, c_out in zip(channels[:-1], channels[1:]):
            layers += [
                nn.ConvTranspose2d(c_in, c_out, KERNEL, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(c_out),
                nn.ReLU(inplace=True),
            ]
        layers += [nn.Conv2d(channels[-1], out_ch, 3, padding=1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


@ARCHS.register("a1", Config=ConvConfig, check_run=conv_check_run("a1", decoder_upsamplings))
def build_a1(model_cfg, input_shape: tuple[int, ...]) -> AutoEncoder:
    """MoCA's A1 (WAE convnet + batch norm) for (C, H, H) images."""
    c, side = image_shape(input_shape, "a1")
    decoder_upsamplings(side)  # reject unsupported sides before allocating anything
    return AutoEncoder(
        A1Encoder(c, side, model_cfg.latent_dim, model_cfg.width),
        A1Decoder(c, side, model_cfg.latent_dim, model_cfg.width),
    )
