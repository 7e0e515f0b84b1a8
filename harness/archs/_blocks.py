"""Building blocks shared by the convolutional architectures (small_conv, a1, a2, resnet_hq).

Every decoder here mirrors its encoder *by spatial size*: the encoder records the side of
its feature maps after each stride-2 layer (``halvings``), and the decoder upsamples back
through exactly the same sides in reverse. Odd sides (28 -> 14 -> 7 -> 4) therefore come
back exactly (4 -> 7 -> 14 -> 28) without cropping or padding the output image.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

from torch import Tensor, nn

from harness.errors import ConfigError, require

MIN_SIDE = 8  # smallest image side any convolutional architecture here accepts


@dataclass
class ConvConfig:
    """The key every convolutional architecture here owns under ``model:`` (one shared key)."""

    width: int = 32  # base channel count

    def check(self, p: str) -> None:
        require(self.width >= 1, f"{p}.width", self.width, "an integer >= 1")


def conv_check_run(arch: str, check_side: Callable[[int], object] | None = None):
    """``check_run`` of a convolutional architecture: the data must be square images of a
    side it accepts (:func:`image_shape`; ``check_side(side)`` raises :class:`ConfigError`
    for sides this architecture cannot decode), checked at validation from the dataset's
    declared item shape instead of when the model is built inside the run."""
    def check_run(cfg) -> None:
        from harness.datasets import dataset_item_shape

        shape = dataset_item_shape(cfg.data)
        if shape is None:
            return
        _, side = image_shape(shape, arch)
        if check_side is not None:
            check_side(side)

    return check_run


def image_shape(input_shape: tuple[int, ...], arch: str) -> tuple[int, int]:
    """``(channels, side)`` of a square image input ``(C, H, W)``; ConfigError otherwise.

    The builders are called with the data's item shape, so a mismatch between ``model.arch``
    and the data (vectors, non-square or tiny images) is reported against ``model.arch``.
    """
    shape = tuple(int(s) for s in input_shape)
    if len(shape) != 3 or shape[1] != shape[2] or shape[1] < MIN_SIDE or shape[0] < 1:
        raise ConfigError(
            "model.arch",
            f"got {arch!r} for input shape {shape}; allowed: square images (C, H, H) with "
            f"H >= {MIN_SIDE} (use arch 'mlp' for vector data)",
        )
    return shape[0], shape[1]


def halvings(side: int, count: int) -> list[int]:
    """Sides after ``count`` stride-2 layers with "same" padding: ``[side, ⌈side/2⌉, ...]``."""
    sides = [side]
    for _ in range(count):
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def halvings_to(side: int, target: int) -> list[int]:
    """Halve ``side`` (rounding up) until it is at most ``target``; all sides, input first."""
    sides = [side]
    while sides[-1] > target:
        sides.append(math.ceil(sides[-1] / 2))
    return sides


def conv_same(in_ch: int, out_ch: int, kernel: int, side: int, bias: bool = True) -> nn.Module:
    """A stride-2 convolution with TensorFlow's "SAME" padding: output side ⌈side/2⌉.

    TensorFlow pads ``(out-1)*2 + kernel - side`` pixels in total, the extra one on the
    bottom/right when it is odd (the WAE reference code is TensorFlow); PyTorch's
    ``padding=`` is symmetric, so an asymmetric total gets an explicit ZeroPad2d.
    """
    out = math.ceil(side / 2)
    total = max((out - 1) * 2 + kernel - side, 0)
    before, after = total // 2, total - total // 2
    if before == after:
        return nn.Conv2d(in_ch, out_ch, kernel, stride=2, padding=before, bias=bias)
    return nn.Sequential(
        nn.ZeroPad2d((before, after, before, after)),
        nn.Conv2d(in_ch, out_ch, kernel, stride=2, padding=0, bias=bias),
    )


def deconv3x3_to(in_ch: int, out_ch: int, in_side: int, out_side: int, bias: bool = True) -> nn.ConvTranspose2d:
    """The transpose of a 3x3 stride-2 padding-1 convolution that maps ``out_side -> in_side``.

    Such a convolution maps n to ⌈n/2⌉, so going back needs ``output_padding`` 1 for even
    and 0 for odd targets.
    """
    extra = out_side - (2 * in_side - 1)
    if extra not in (0, 1):
        raise ValueError(f"cannot upsample side {in_side} to {out_side} with one stride-2 layer")
    return nn.ConvTranspose2d(in_ch, out_ch, 3, stride=2, padding=1, output_padding=extra, bias=bias)


class Unflatten(nn.Module):
    """(B, C*S*S) -> (B, C, S, S): the mirror of flattening the encoder's last feature map."""

    def __init__(self, channels: int, side: int):
        super().__init__()
        self.shape = (channels, side, side)

    def forward(self, x: Tensor) -> Tensor:
        return x.view(x.shape[0], *self.shape)


def down_block(in_ch: int, out_ch: int, stride: int) -> BasicBlock:
    """A torchvision ``BasicBlock``; when the shape changes, with the 1x1 conv + BN shortcut.

    This is how ``torchvision.models.ResNet._make_layer`` builds the first block of a stage
    (He et al. 2016, shortcut option B).
    """
    from torchvision.models.resnet import BasicBlock, conv1x1, conv3x3
    downsample = None
    if stride != 1 or in_ch != out_ch:
        downsample = nn.Sequential(conv1x1(in_ch, out_ch, stride), nn.BatchNorm2d(out_ch))
    return BasicBlock(in_ch, out_ch, stride, downsample)


def resnet_stage(in_ch: int, out_ch: int, blocks: int, stride: int) -> nn.Sequential:
    """A ResNet stage exactly as ``ResNet._make_layer`` builds it: the first block strides."""
    from torchvision.models.resnet import BasicBlock, conv1x1, conv3x3
    layers = [down_block(in_ch, out_ch, stride)]
    layers += [BasicBlock(out_ch, out_ch) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class UpBasicBlock(nn.Module):
    """The mirror of torchvision's ``BasicBlock``: upsampling at the end instead of striding first.

    ``BasicBlock`` is conv3x3(stride) -> BN -> ReLU -> conv3x3 -> BN, plus a shortcut, then
    ReLU. Read backwards: conv3x3(in -> in) -> BN -> ReLU -> [upsample] conv3x3(in -> out)
    -> BN, plus a shortcut ([upsample] conv1x1 + BN when the shape changes), then ReLU.

    ``mode`` chooses how the side grows from ``in_side`` to ``out_side``:
    ``"nearest"`` - nearest-neighbour resize to ``out_side`` then a 3x3 convolution (the
    "upsampling" of the MoCA A2 decoder; works for any pair of sides);
    ``"deconv"`` - a 3x3 stride-2 transposed convolution (the "de-convolution upsampling
    layers" of the paper's CelebA-HQ decoder, appendix A); needs ``out_side`` in
    ``{2*in_side - 1, 2*in_side}``. With ``out_side=None`` the block keeps its resolution.
    """

    def __init__(self, in_ch: int, out_ch: int, in_side: int | None = None,
                 out_side: int | None = None, mode: str = "nearest"):
        from torchvision.models.resnet import BasicBlock, conv1x1, conv3x3
        super().__init__()
        if mode not in ("nearest", "deconv"):
            raise ValueError(f"unknown upsampling mode {mode!r}")
        resize = out_side is not None and out_side != in_side
        self.conv1 = conv3x3(in_ch, in_ch)
        self.bn1 = nn.BatchNorm2d(in_ch)
        self.relu = nn.ReLU(inplace=True)
        if not resize:
            self.conv2 = conv3x3(in_ch, out_ch)
        elif mode == "deconv":
            self.conv2 = deconv3x3_to(in_ch, out_ch, in_side, out_side, bias=False)
        else:
            self.conv2 = nn.Sequential(nn.Upsample(size=(out_side, out_side), mode="nearest"),
                                       conv3x3(in_ch, out_ch))
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.shortcut: nn.Module | None = None
        if resize or in_ch != out_ch:
            up = [nn.Upsample(size=(out_side, out_side), mode="nearest")] if resize else []
            self.shortcut = nn.Sequential(*up, conv1x1(in_ch, out_ch), nn.BatchNorm2d(out_ch))

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.shortcut is None else self.shortcut(x)
        return self.relu(out + identity)


def init_resnet_(module: nn.Module) -> nn.Module:
    """torchvision's ResNet initialisation: He-normal (fan_out) convolutions, BN = identity.

    Transposed convolutions keep PyTorch's default initialisation (torchvision has none).
    """
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return module
