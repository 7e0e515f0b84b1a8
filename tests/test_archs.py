"""The convolutional architectures: shapes, parameter counts, gradients, config errors.

Parameter counts are checked against the paper's figures (appendix A: A1 ~38M, A2 ~24M,
within 15%) and against hand computations layer by layer; A2's encoder against
torchvision's ``resnet18`` itself. Shape tests use a small ``width`` so that 256-pixel
inputs stay cheap; the paper's widths at 256 pixels are marked slow.
"""

from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from harness.archs import ARCHS, build_autoencoder
from harness.config import ConfigError, ModelConfig, config_from_dict, from_dict

CONV_ARCHS = ["small_conv", "a1", "a2", "resnet_hq"]
SIDES = [28, 32, 64, 256]


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def build(arch: str, shape: tuple[int, ...], latent: int = 16, width: int = 4):
    torch.manual_seed(0)
    return build_autoencoder(ModelConfig(arch=arch, latent_dim=latent, width=width), shape)


def check_round_trip(ae, shape: tuple[int, int, int], latent: int, batch: int = 2) -> None:
    """Encoder: (B, latent); decoder: exactly (B, *shape), its last operation a sigmoid."""
    sigmoid = list(ae.decoder.modules())[-1]
    assert isinstance(sigmoid, nn.Sigmoid)
    seen = []
    sigmoid.register_forward_hook(lambda module, inputs, output: seen.append(output))
    x = torch.rand(batch, *shape)
    with torch.no_grad():
        z = ae.encoder(x)
        assert z.shape == (batch, latent)
        assert torch.isfinite(z).all()
        y = ae.decoder(z)
    assert y.shape == (batch, *shape)
    assert len(seen) == 1 and seen[0] is y  # nothing runs after the sigmoid
    assert y.min() >= 0 and y.max() <= 1


def test_registry_lists_the_convolutional_architectures():
    assert set(CONV_ARCHS) <= set(ARCHS.names())


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("side", SIDES)
@pytest.mark.parametrize("arch", CONV_ARCHS)
def test_shapes_small_width(arch, side, channels):
    shape = (channels, side, side)
    check_round_trip(build(arch, shape, latent=16, width=2 if side == 256 else 4), shape, 16)


def test_shapes_default_config_mnist():
    shape = (1, 28, 28)
    check_round_trip(build_autoencoder(ModelConfig(), shape), shape, ModelConfig().latent_dim)


@pytest.mark.slow
@pytest.mark.parametrize("arch", ["a1", "a2", "resnet_hq"])
def test_shapes_default_width_256(arch):
    shape = (3, 256, 256)
    check_round_trip(build(arch, shape, latent=128, width=32), shape, 128)


# ------------------------------------------------------------------ parameter counts


def conv(c_in, c_out, k, bias):
    return c_in * c_out * k * k + (c_out if bias else 0)


def linear(n_in, n_out):
    return n_in * n_out + n_out


def bn(c):
    return 2 * c


def test_a1_celeba_parameter_count_and_shapes():
    """WAE CelebA net + BN, latent 128: hand count, and the paper's ~38M within 15%."""
    ae = build("a1", (3, 64, 64), latent=128, width=32)
    enc = sum(conv(a, b, 4, False) + bn(b) for a, b in [(3, 128), (128, 256), (256, 512), (512, 1024)])
    enc += linear(4 * 4 * 1024, 128)
    dec = linear(128, 8 * 8 * 1024) + bn(1024)
    dec += sum(conv(a, b, 4, False) + bn(b) for a, b in [(1024, 512), (512, 256), (256, 128)])
    dec += conv(128, 3, 3, True)
    assert (n_params(ae.encoder), n_params(ae.decoder)) == (enc, dec)
    assert enc + dec == 32_588_803
    assert abs(n_params(ae) - 38e6) / 38e6 < 0.15
    check_round_trip(ae, (3, 64, 64), 128)


def test_a1_mnist_variant_follows_wae():
    """28x28: 4 "SAME" convolutions (28-14-7-4-2), decoder from 7x7 with 2 upsamplings."""
    ae = build("a1", (1, 28, 28), latent=8, width=32)
    with torch.no_grad():
        feats = ae.encoder.features(torch.rand(2, 1, 28, 28))
    assert feats.shape == (2, 1024, 2, 2)
    deconvs = [m for m in ae.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [m.out_channels for m in deconvs] == [512, 256]
    assert ae.decoder.net[0].out_features == 7 * 7 * 1024


def up_block(c_in, c_out, resize=False):
    """Parameters of an UpBasicBlock: two 3x3 convs + BNs, and a 1x1 conv + BN shortcut."""
    shortcut = conv(c_in, c_out, 1, False) + bn(c_out) if resize or c_in != c_out else 0
    return conv(c_in, c_in, 3, False) + bn(c_in) + conv(c_in, c_out, 3, False) + bn(c_out) + shortcut


def test_a2_is_resnet18_and_its_mirror():
    """CelebA size, latent 128: the encoder is torchvision's resnet18 with a 3x3 conv1 (stride 2
    above 32 px), no max-pool and fc to the latent (its state dict loads strictly and gives
    the same output); the decoder is counted by hand; the total is the paper's ~24M within 15%."""
    ae = build("a2", (3, 64, 64), latent=128, width=32)
    ref = torchvision.models.resnet18(num_classes=128)
    ref.conv1 = nn.Conv2d(3, 64, 3, stride=2, padding=1, bias=False)
    ref.maxpool = nn.Identity()
    ae.encoder.load_state_dict(ref.state_dict(), strict=True)
    ae.eval()
    ref.eval()
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(ae.encoder(x), ref(x))

    dec = linear(128, 512 * 4 * 4) + bn(512)
    for c_in, c_out in [(512, 256), (256, 128), (128, 64)]:
        dec += up_block(c_in, c_in) + up_block(c_in, c_out, resize=True)
    dec += 2 * up_block(64, 64) + conv(64, 3, 3, True)
    assert n_params(ae.encoder) == n_params(ref)
    assert n_params(ae.decoder) == dec
    assert n_params(ae) == 23_459_203
    assert abs(n_params(ae) - 24e6) / 24e6 < 0.15


def test_a2_cifar_layout():
    """32 px: conv1 has stride 1 (the CIFAR ResNet), the final layer upscales x1, and the
    parameter count is the same as at 64 px (the strides add no parameters)."""
    ae = build("a2", (3, 32, 32), latent=128, width=32)
    assert ae.encoder.conv1.stride == (1, 1)
    assert not any(isinstance(m, nn.Upsample) for m in ae.decoder.conv1.modules())
    assert n_params(ae) == 23_459_203
    wide = build("a2", (3, 64, 64), width=4)
    assert wide.encoder.conv1.stride == (2, 2)
    assert isinstance(wide.decoder.conv1[0], nn.Upsample) and wide.decoder.conv1[0].size == (64, 64)


def test_small_conv_is_small():
    """Default config (width 32, latent 64) on MNIST: 449,473 parameters, counted by hand."""
    ae = build_autoencoder(ModelConfig(), (1, 28, 28))
    assert ModelConfig().arch == "small_conv"
    enc = conv(1, 32, 3, True) + conv(32, 64, 3, True) + conv(64, 128, 3, True) + linear(128 * 4 * 4, 64)
    dec = linear(64, 128 * 4 * 4) + conv(128, 64, 3, True) + conv(64, 32, 3, True) + conv(32, 1, 3, True)
    assert (n_params(ae.encoder), n_params(ae.decoder)) == (enc, dec)
    assert enc + dec == 449_473


def test_small_conv_encodes_items_independently_of_their_batch():
    ae = build("small_conv", (3, 32, 32))
    x = torch.rand(4, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(ae.encoder(x)[:1], ae.encoder(x[:1]))


@pytest.mark.parametrize("side, blocks", [(256, 6), (128, 5), (64, 4), (32, 3), (28, 3)])
def test_resnet_hq_one_block_per_halving(side, blocks):
    """Appendix A / D.2: 6 blocks take 256 to 4x4, one block fewer per halving of the input."""
    ae = build("resnet_hq", (3, side, side), width=2)
    assert len(ae.encoder.blocks) == blocks
    assert len(ae.decoder.blocks) == blocks
    with torch.no_grad():
        feats = ae.encoder.blocks(ae.encoder.stem(torch.rand(2, 3, side, side)))
    assert feats.shape[-2:] == (4, 4)
    assert feats.shape[1] == 2 * min(2**blocks, 16)


def test_resnet_hq_parameter_count_and_shapes():
    """64 px, width 32, latent 128: stem 32 channels, blocks 64-128-256-512, counted by hand
    (a transposed 3x3 convolution has as many weights as a 3x3 convolution)."""
    ae = build("resnet_hq", (3, 64, 64), latent=128, width=32)
    assert ae.encoder.stem[0].out_channels == 32
    assert [b.conv1.out_channels for b in ae.encoder.blocks] == [64, 128, 256, 512]
    pairs = [(32, 64), (64, 128), (128, 256), (256, 512)]
    down = sum(conv(a, b, 3, False) + conv(b, b, 3, False) + conv(a, b, 1, False) + 3 * bn(b) for a, b in pairs)
    enc = conv(3, 32, 3, False) + bn(32) + down + linear(512 * 4 * 4, 128)
    dec = linear(128, 512 * 4 * 4) + bn(512) + sum(up_block(b, a, resize=True) for a, b in pairs)
    dec += conv(32, 3, 3, True)
    assert (n_params(ae.encoder), n_params(ae.decoder)) == (enc, dec)
    assert enc + dec == 11_866_371
    check_round_trip(ae, (3, 64, 64), 128)


# ------------------------------------------------------------------ gradients


@pytest.mark.parametrize("arch", CONV_ARCHS)
def test_gradients_reach_every_parameter(arch):
    ae = build(arch, (3, 16, 16), latent=16, width=4)
    x = torch.rand(4, 3, 16, 16)
    z = ae.encoder(x)
    loss = ((ae.decoder(z) - x) ** 2).sum() + (z**2).sum()
    loss.backward()
    for name, p in ae.named_parameters():
        assert p.grad is not None, name
        assert p.grad.abs().sum() > 0, name


# ------------------------------------------------------------------ configuration errors


def test_unknown_arch_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        from_dict(ModelConfig, {"arch": "a3"}, "model").check("model")
    assert err.value.key == "model.arch"
    for name in CONV_ARCHS:
        assert name in str(err.value)


def test_unknown_arch_through_config_from_dict():
    with pytest.raises(ConfigError) as err:
        config_from_dict({"model": {"arch": "a3"}, "method": {"name": "none"}})
    assert err.value.key == "model.arch"
    assert all(name in str(err.value) for name in CONV_ARCHS)


def test_bad_width_is_a_config_error():
    with pytest.raises(ConfigError) as err:
        from_dict(ModelConfig, {"arch": "a2", "width": 0}, "model").check("model")
    assert err.value.key == "model.width"


@pytest.mark.parametrize("arch", CONV_ARCHS)
@pytest.mark.parametrize("shape", [(3, 32, 28), (100,), (1, 4, 4)])
def test_unsupported_input_is_a_config_error(arch, shape):
    with pytest.raises(ConfigError) as err:
        build(arch, shape)
    assert err.value.key == "model.arch"


def test_a1_rejects_sides_its_decoder_cannot_reach():
    with pytest.raises(ConfigError, match="divisible by 16"):
        build("a1", (3, 100, 100))
