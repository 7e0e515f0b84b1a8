"""Image-space Laplacian-pyramid SWD (harness/metrics/image_swd.py) and its evaluator.

The pyramid filters are checked against scipy.ndimage (the PGGAN reference uses
``scipy.ndimage.convolve(..., mode='mirror')``), the projected 1-D distances against POT."""

from __future__ import annotations

import numpy as np
import ot
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from torch import nn

from harness.archs import AutoEncoder
from harness.config import ConfigError, RunConfig
from harness.datasets import DataBundle
from harness.evaluators import build_evaluator, make_context
from harness.metrics import image_swd as S
from harness.priors import build_prior
from harness.seeding import derive_seed, make_generator

K = np.outer([1, 4, 6, 4, 1], [1, 4, 6, 4, 1])[None, None] / 256.0


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def _smooth(n, c, size, seed=0):
    """Images with spatial structure (bilinear upsampling of a coarse random grid)."""
    x = torch.rand(n, c, max(2, size // 4), max(2, size // 4), generator=_gen(seed))
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def _noisy(x, sigma, seed=1):
    return (x + sigma * torch.randn(x.shape, generator=_gen(seed))).clamp(0, 1)


def test_pyramid_filters_match_scipy():
    x = torch.rand(2, 3, 16, 16, generator=_gen(0), dtype=torch.float64).float()
    xn = x.double().numpy()
    # pggan: cv2-style pyrDown / pyrUp with mirror borders
    ref_down = scipy.ndimage.convolve(xn, K, mode="mirror")[:, :, ::2, ::2]
    assert np.allclose(S.pyr_down(x, "pggan").numpy(), ref_down, atol=1e-5)
    small = S.pyr_down(x, "pggan")
    zeros = np.zeros((2, 3, 16, 16))
    zeros[:, :, ::2, ::2] = small.double().numpy()
    ref_up = scipy.ndimage.convolve(zeros, 4 * K, mode="mirror")
    assert np.allclose(S.pyr_up(small, "pggan", (16, 16)).numpy(), ref_up, atol=1e-5)
    # swd_pytorch: zero padding, nearest-neighbour upsampling
    ref_down = scipy.ndimage.convolve(xn, K, mode="constant")[:, :, ::2, ::2]
    assert np.allclose(S.pyr_down(x, "swd_pytorch").numpy(), ref_down, atol=1e-5)
    rep = small.double().numpy().repeat(2, axis=2).repeat(2, axis=3)
    ref_up = scipy.ndimage.convolve(rep, K, mode="constant")
    assert np.allclose(S.pyr_up(small, "swd_pytorch", (16, 16)).numpy(), ref_up, atol=1e-5)


@pytest.mark.parametrize("mode", S.MODES)
def test_laplacian_pyramid_reconstructs_and_has_the_documented_depth(mode):
    expected = {28: [28], 32: [32, 16], 64: [64, 32, 16], 256: [256, 128, 64, 32, 16]}
    for size, levels in expected.items():
        assert S.pyramid_resolutions(size, mode) == levels
    x = torch.rand(2, 1, 64, 64, generator=_gen(1))
    pyr = S.laplacian_pyramid(x, 3, mode)
    assert [p.shape[-1] for p in pyr] == [64, 32, 16]
    rec = pyr[-1]
    for band in reversed(pyr[:-1]):
        rec = band + S.pyr_up(rec, mode, band.shape[-2:])
    assert torch.allclose(rec, x, atol=1e-5)


def test_projected_distance_equals_pot_w1():
    a = torch.randn(300, 12, generator=_gen(2))
    b = 0.3 + 1.5 * torch.randn(300, 12, generator=_gen(3))
    for mode in S.MODES:  # unit directions, and std-scaled ones (length ~ sqrt(dim))
        dirs = S._directions(mode, 12, _gen(4))
        ref = ot.sliced_wasserstein_distance(a.double().numpy(), b.double().numpy(), projections=dirs.double().numpy(), p=1)
        assert S.sliced_w1(a, b, dirs, max_elements=1000) == pytest.approx(float(ref), rel=1e-5)
    assert S._directions("pggan", 12, _gen(4)).norm(dim=0).allclose(torch.ones(512))
    assert S._directions("swd_pytorch", 12, _gen(4)).std(dim=0).allclose(torch.ones(512))


@pytest.mark.parametrize("mode", S.MODES)
def test_descriptors_are_normalised_per_channel(mode):
    x = _smooth(6, 3, 32)
    corners = S._corners(mode, 6, 32, 32, _gen(0))
    d = S._level_descriptors(x, 0, 2, mode, corners, 4, "cpu").reshape(-1, 3, 7, 7)
    assert d.shape[0] == 6 * 128
    assert torch.allclose(d.mean(dim=(0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(d.std(dim=(0, 2, 3), correction=0 if mode == "pggan" else 1), torch.ones(3), atol=1e-4)


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("mode", S.MODES)
def test_swd_grows_with_noise_level(mode, channels):
    x = _smooth(16, channels, 32)
    values = [S.image_swd(x, _noisy(x, s), mode=mode, seed=3)["mean"] for s in (0.0, 0.05, 0.15, 0.4)]
    assert values == sorted(values) and values[-1] > 2 * values[0]
    if mode == "swd_pytorch":
        assert values[0] == 0.0  # shared patch positions: a set is at distance 0 of itself


@pytest.mark.parametrize("size,channels", [(28, 1), (28, 3), (64, 1), (64, 3)])
def test_sizes_levels_and_input_types(size, channels):
    x = _smooth(8, channels, size)
    y = _noisy(x, 0.3)
    for mode in S.MODES:
        out = S.image_swd(x, y, mode=mode, seed=0)
        assert list(out) == [f"res{r}" for r in S.pyramid_resolutions(size, mode)] + ["mean"]
        assert out["mean"] == pytest.approx(np.mean([v for k, v in out.items() if k != "mean"]))
        assert all(np.isfinite(v) and v > 0 for v in out.values())
    # uint8 input is read as value / 255
    xu, yu = S.to_uint8(x), S.to_uint8(y)
    assert S.image_swd(xu, yu, seed=1) == pytest.approx(S.image_swd(xu.float() / 255, yu.float() / 255, seed=1), rel=1e-5)


def test_deterministic_under_seed_and_independent_of_chunking():
    x = _smooth(12, 3, 32)
    y = _noisy(_smooth(12, 3, 32, seed=5), 0.1)
    for mode in S.MODES:
        a = S.image_swd(x, y, mode=mode, seed=7)
        assert S.image_swd(x, y, mode=mode, seed=7) == a
        assert S.image_swd(x, y, mode=mode, seed=7, batch_size=5) == pytest.approx(a, rel=1e-5)
        assert S.image_swd(x, y, mode=mode, seed=8) != a
    # pggan draws positions independently per set: a set against itself sits at a sampling
    # noise floor, below a real change, that shrinks as the sets grow
    floor = S.image_swd(x, x, mode="pggan", seed=7)["mean"]
    assert 0 < floor < S.image_swd(x, _noisy(x, 0.4), mode="pggan", seed=7)["mean"]
    x4 = _smooth(48, 3, 32)
    assert S.image_swd(x4, x4, mode="pggan", seed=7)["mean"] < 0.7 * floor


@pytest.mark.parametrize("mode", S.MODES)
def test_reference_cache_gives_bitwise_the_same_values(mode):
    """The cached reference half (an evaluator, every epoch) changes the time, never a value: the
    same numbers, bit for bit, on the first and the later calls, with several pyramid levels; a
    changed reference set, seed or a cache too small to hold a level starts afresh."""
    real = S.to_uint8(_smooth(10, 3, 40, seed=2))
    cache = S.ReferenceCache()
    for k in range(3):
        fake = S.to_uint8(_noisy(_smooth(10, 3, 40, seed=10 + k), 0.1 * k))
        assert S.image_swd(fake, real, mode=mode, seed=4, reference=cache) == S.image_swd(fake, real, mode=mode, seed=4)
    assert len(cache._levels) == len(S.pyramid_resolutions(40, mode)) == 2
    other = real.clone()
    other[0, 0, 0, 0] ^= 1  # one bit of the reference differs: not the cached set
    assert S.image_swd(fake, other, mode=mode, seed=4, reference=cache) == S.image_swd(fake, other, mode=mode, seed=4)
    assert S.image_swd(fake, other, mode=mode, seed=5, reference=cache) == S.image_swd(fake, other, mode=mode, seed=5)
    tiny = S.ReferenceCache(max_bytes=0)
    assert S.image_swd(fake, real, mode=mode, seed=4, reference=tiny) == S.image_swd(fake, real, mode=mode, seed=4)
    assert tiny._levels == {}


def test_mode_scale_ratio_is_about_twelve():
    x = _smooth(16, 3, 32)
    y = _noisy(x, 0.3)
    ratio = S.image_swd(x, y, mode="swd_pytorch")["mean"] / S.image_swd(x, y, mode="pggan")["mean"]
    assert 8 < ratio < 18


def test_input_errors():
    x = torch.rand(4, 3, 32, 32)
    with pytest.raises(ValueError, match="same size"):
        S.image_swd(x, x[:3])
    with pytest.raises(ValueError, match="1- or 3-channel"):
        S.image_swd(x[:, :2], x[:, :2], mode="swd_pytorch")
    with pytest.raises(ValueError, match="unknown image SWD mode"):
        S.image_swd(x, x, mode="karras")
    assert S.image_swd(x[:, :2], x[:, :2], mode="pggan")["mean"] > 0  # any channel count


@pytest.mark.parametrize("mode", S.MODES)
def test_256_pixels(mode):
    x = _smooth(3, 3, 256)
    out = S.image_swd(x, _noisy(x, 0.2), mode=mode)
    assert list(out) == ["res256", "res128", "res64", "res32", "res16", "mean"]
    assert all(v > 0 for v in out.values())


# ---------------------------------------------------------------- the evaluator


def _tiny_model(c, size, d=8):
    enc = nn.Sequential(nn.Flatten(), nn.Linear(c * size * size, d))
    dec = nn.Sequential(nn.Linear(d, c * size * size), nn.Sigmoid(), nn.Unflatten(1, (c, size, size)))
    torch.manual_seed(0)
    return AutoEncoder(enc, dec).eval()


def test_evaluator_compares_fixed_quantised_samples_with_the_split():
    cfg = RunConfig()
    cfg.model.latent_dim = 8
    cfg.eval.swd.num_images, cfg.eval.swd.mode = 10, "swd_pytorch"
    imgs = torch.randint(0, 256, (30, 3, 32, 32), generator=_gen(0), dtype=torch.uint8)
    data = DataBundle("rand", imgs[:20], imgs[20:])
    prior = build_prior("sphere", 8)
    ev = build_evaluator("image_swd", make_context(cfg, data, prior, "cpu", None))
    model = _tiny_model(3, 32)
    out = ev(model, 0)
    assert set(out) == {"image_swd", "image_swd_res32", "image_swd_res16"}
    assert ev(model, 1) == out
    z = prior.sample(10, generator=make_generator(cfg.eval.seed, "image_swd", "prior"))
    with torch.no_grad():
        fake = S.to_uint8(model.decoder(z))
    ref = S.image_swd(fake, imgs[20:30], mode="swd_pytorch", seed=derive_seed(cfg.eval.seed, "image_swd"))
    assert out["image_swd"] == pytest.approx(ref["mean"], rel=1e-6)
    vectors = DataBundle("vec", torch.randn(20, 5), torch.randn(10, 5))
    with pytest.raises(ConfigError, match="image dataset"):
        build_evaluator("image_swd", make_context(cfg, vectors, prior, "cpu", None))
