"""FID / KID (harness/metrics/fid.py, harness/evaluators/fid.py).

No network: the real Inception weights are not needed. A module fixture writes random
weights of the FID Inception architecture at torch hub's cache path in a temporary
TORCH_HOME, where pytorch-fid's own download path (and ours) finds them. Values are checked
against pytorch-fid itself (``get_activations`` in process, ``python -m pytorch_fid`` as a
subprocess), KID against a double loop over pairs. Most tests use pytorch-fid's 64-d features
(the first block: a tenth of the network's cost); the 2048-d cross-check is marked slow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.transforms as TF
from PIL import Image
from pytorch_fid.fid_score import ImagePathDataset, get_activations

from harness.config import ConfigError, RunConfig
from harness.datasets._base import DataBundle
from harness.metrics import fid as M
from harness.priors import build_prior
from harness.seeding import make_generator


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    """A TORCH_HOME whose hub cache holds random FID Inception weights."""
    home = tmp_path_factory.mktemp("torch_home")
    M.save_random_fid_weights(home / "hub" / "checkpoints" / M.FID_WEIGHTS_FILE, seed=0)
    return home


@pytest.fixture
def hub(torch_home, monkeypatch) -> Path:
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    return torch_home


def smooth_images(n: int, channels: int = 3, size: int = 32, shift: float = 0.0, seed: int = 0):
    """Random-ish uint8 images: 4×4 noise upsampled bilinearly, plus pixel noise."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    x = 0.8 * x + 0.2 * torch.rand(n, channels, size, size, generator=g) + shift
    return M.quantize(x)


def save_pngs(images: torch.Tensor, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, img in enumerate(images):
        arr = img.permute(1, 2, 0).numpy()
        pil = Image.fromarray(arr[:, :, 0], mode="L") if arr.shape[2] == 1 else Image.fromarray(arr)
        pil.save(folder / f"{i:04d}.png")
        paths.append(folder / f"{i:04d}.png")
    return paths


# ---------------------------------------------------------------------------- images


def test_quantize_clamps_scales_and_rounds_like_a_saved_png(tmp_path):
    x = torch.tensor([-0.1, 0.0, 0.2 / 255, 0.7 / 255, 0.5, 100.4 / 255, 1.0, 1.3])
    assert M.quantize(x).tolist() == [0, 0, 0, 1, 128, 100, 255, 255]
    assert M.quantize(x).dtype == torch.uint8
    # What the pipeline feeds the network equals pytorch-fid's reading of the saved PNG.
    img = M.quantize(torch.rand(1, 3, 5, 7, generator=torch.Generator().manual_seed(1)))
    (path,) = save_pngs(img, tmp_path)
    from_png = ImagePathDataset([path], transforms=TF.ToTensor())[0]
    assert torch.equal(from_png, img[0].float() / 255)


def test_features_equal_pytorch_fid_get_activations_rgb_and_grey(hub, tmp_path):
    net = M.load_fid_network(dims=64)
    for channels in (3, 1):  # grey PNGs are converted to RGB by pytorch-fid (PIL convert)
        images = smooth_images(5, channels=channels, size=16, seed=channels)
        files = save_pngs(images, tmp_path / f"c{channels}")
        expected = get_activations(files, net.net, batch_size=5, dims=64, device="cpu", num_workers=0)
        ours = M.inception_features(images, net, batch_size=5)
        assert ours.dtype == np.float64 and ours.shape == (5, 64)
        np.testing.assert_allclose(ours, expected, rtol=1e-6, atol=1e-7)


def _cli_fid(dir1: Path, dir2: Path, home: Path, dims: int, batch_size: int) -> float:
    env = {**os.environ, "TORCH_HOME": str(home)}
    out = subprocess.run(
        [sys.executable, "-m", "pytorch_fid", str(dir1), str(dir2), "--device", "cpu",
         "--batch-size", str(batch_size), "--dims", str(dims), "--num-workers", "0"],
        env=env, capture_output=True, text=True, check=True, timeout=600).stdout
    return float(re.search(r"FID:\s+(\S+)", out).group(1))


def _our_fid(a: torch.Tensor, b: torch.Tensor, dims: int, batch_size: int) -> float:
    net = M.load_fid_network(dims=dims)
    fa, fb = (M.FeatureStats.from_features(M.inception_features(x, net, batch_size)) for x in (a, b))
    return M.frechet_distance(fa, fb)


@pytest.mark.parametrize("dims", [64, pytest.param(2048, marks=pytest.mark.slow)])
def test_fid_equals_pytorch_fid_command_line(hub, tmp_path, dims):
    a, b = smooth_images(12, seed=1), smooth_images(12, shift=0.15, seed=2)
    save_pngs(a, tmp_path / "a")
    save_pngs(b, tmp_path / "b")
    cli = _cli_fid(tmp_path / "a", tmp_path / "b", hub, dims, batch_size=12)
    ours = _our_fid(a, b, dims, batch_size=12)
    assert cli > 0
    assert ours == pytest.approx(cli, rel=1e-3)


# ---------------------------------------------------------------------------- Fréchet distance


def _pytorch_fid_value(mu1, s1, mu2, s2) -> float:
    import warnings

    from pytorch_fid.fid_score import calculate_frechet_distance

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # SciPy 1.17 deprecates sqrtm's disp (removed in 1.18)
        return float(calculate_frechet_distance(mu1, s1, mu2, s2))


def test_frechet_distance_by_hand():
    # 1-d: (m1 - m2)^2 + (s1 - s2)^2 for standard deviations s1, s2.
    assert M.frechet_distance_arrays([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1, abs=1e-12)
    # Commuting (diagonal) covariances: sum of (sqrt a - sqrt b)^2, singular ones included.
    a, b = np.array([4.0, 1.0, 0.0, 2.0]), np.array([1.0, 1.0, 3.0, 0.0])
    expected = ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert M.frechet_distance_arrays(np.zeros(4), np.diag(a), np.zeros(4), np.diag(b)) == pytest.approx(expected, rel=1e-12)
    # Identical statistics: 0 up to rounding (the square roots of the ~1e-16 eigenvalues of a
    # rank-deficient covariance, N < d), relative to the scale tr Σ.
    x = np.random.default_rng(0).normal(size=(5, 16))
    st = M.FeatureStats.from_features(x)
    assert abs(M.frechet_distance(st, st)) < 1e-6 * np.trace(st.sigma)
    with pytest.raises(ValueError, match="mismatching shapes"):
        M.frechet_distance_arrays(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_frechet_distance_equals_pytorch_fid_within_1e_6(hub):
    """The test cases of this file (the images of the command-line comparison, 64-d Inception
    features, N = 12 < d: singular covariances) and larger feature sets."""
    net = M.load_fid_network(dims=64)
    cases = [(M.inception_features(smooth_images(12, seed=1), net), M.inception_features(smooth_images(12, shift=0.15, seed=2), net)),
             (M.inception_features(smooth_images(6, channels=1, size=16, seed=1), net),
              M.inception_features(smooth_images(6, channels=1, size=16, seed=3), net))]
    rng = np.random.default_rng(0)
    for n, d, shift in [(200, 64, 0.1), (2000, 256, 0.02), (50, 8, 0.01)]:
        cases.append((np.abs(rng.normal(size=(n, d))), np.abs(rng.normal(size=(n, d))) * 1.1 + shift))
    for a, b in cases:
        sa, sb = M.FeatureStats.from_features(a), M.FeatureStats.from_features(b)
        expected = _pytorch_fid_value(sa.mu, sa.sigma, sb.mu, sb.sigma)
        assert M.frechet_distance(sa, sb) == pytest.approx(expected, rel=1e-6)


# ---------------------------------------------------------------------------- weights


def test_missing_weights_raise_one_line_naming_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    expected = tmp_path / "hub" / "checkpoints" / "pt_inception-2015-12-05-6726825d.pth"
    with pytest.raises(M.FIDWeightsError) as err:
        M.load_fid_network()
    msg = str(err.value)
    assert "\n" not in msg and str(expected) in msg and "Name or service not known" in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__

    with pytest.raises(M.FIDWeightsError) as err:
        M.load_fid_network(weights=tmp_path / "nowhere.pth")
    assert "\n" not in str(err.value) and str(tmp_path / "nowhere.pth") in str(err.value)


def test_local_weights_file_is_sha256_checked(torch_home, tmp_path):
    wrong = tmp_path / "wrong.pth"
    wrong.write_bytes(b"not the FID Inception weights")
    with pytest.raises(M.FIDWeightsError) as err:
        M.load_fid_network(weights=wrong)
    msg = str(err.value)
    assert "\n" not in msg and str(wrong) in msg and M.FID_WEIGHTS_SHA256 in msg
    assert M.sha256_file(wrong) in msg

    # The random test weights pass when their own hash is the expected one (real file: default).
    local = torch_home / "hub" / "checkpoints" / M.FID_WEIGHTS_FILE
    with pytest.raises(M.FIDWeightsError):
        M.load_fid_network(weights=local, dims=64)
    digest = M.sha256_file(local)
    net = M.load_fid_network(weights=local, dims=64, expected_sha256=digest)
    assert net.weights_sha256 == digest and net.weights_path == local and net.dims == 64


# ---------------------------------------------------------------------------- cache


def _counting_extractor(dims: int = 6):
    calls = []

    def extract(images: torch.Tensor) -> np.ndarray:
        calls.append(len(images))
        flat = images.reshape(len(images), -1).double().numpy()
        return flat[:, :dims] / 255.0 + np.arange(dims)

    return extract, calls


class _Space:
    """A stand-in feature network: what the statistics' key reads of one."""

    def __init__(self, sha="ab" * 32, dims=6, name="inception", extractor="test-v1"):
        self.name, self.dims, self.weights_sha256, self.extractor = name, dims, sha, extractor


def _stats(folder, images, extract, split="test", space=None, notices=None):
    from harness.evaluators import feature_cache as C

    found = C.stats_determinants("cifar10", split, images, space or _Space())
    notices = [] if notices is None else notices
    return C.reference_statistics(folder, found, images, 6, extract, notices.append)


def test_reference_statistics_are_computed_once_then_read_from_cache(tmp_path):
    images = smooth_images(12, size=4)
    extract, calls = _counting_extractor()
    first, entry = _stats(tmp_path, images, extract)
    path = Path(entry["path"])
    assert (calls, entry["read_from_cache"]) == ([12], False) and path.is_file()
    second, again = _stats(tmp_path, images, extract)
    assert again["read_from_cache"] and again["key"] == entry["key"]
    assert calls == [12, 8]  # only the spot check (8 images) is extracted again
    np.testing.assert_array_equal(second.mu, first.mu)
    np.testing.assert_array_equal(second.sigma, first.sigma)
    np.testing.assert_array_equal(second.features, first.features.astype(np.float32))
    np.testing.assert_allclose(first.sigma, np.cov(extract(images), rowvar=False))

    # The key binds split, N, weights, extractor version and pixels: each is another entry.
    assert path.name.startswith("cifar10-test-n12-") and entry["key"][:16] in path.name
    keys = {entry["key"], _stats(tmp_path, images, extract, split="train")[1]["key"],
            _stats(tmp_path, images[:11], extract)[1]["key"],
            _stats(tmp_path, images, extract, space=_Space(sha="cd" * 32))[1]["key"],
            _stats(tmp_path, images, extract, space=_Space(extractor="test-v2"))[1]["key"],
            _stats(tmp_path, 255 - images, extract)[1]["key"]}
    assert len(keys) == 6

    # A damaged file is recomputed and replaced, with a one-line notice.
    path.write_bytes(b"truncated")
    notices: list[str] = []
    _, entry = _stats(tmp_path, images, extract, notices=notices)
    assert not entry["read_from_cache"] and len(notices) == 1 and "unreadable" in notices[0]
    assert _stats(tmp_path, images, extract)[1]["read_from_cache"]


def test_concurrent_writers_leave_one_complete_cache_file(tmp_path):
    images = smooth_images(10, size=4)
    extract, _ = _counting_extractor()
    barrier = threading.Barrier(4)

    def slow_extract(x):  # every writer computes before any of them renames
        if len(x) == len(images):
            barrier.wait(timeout=30)
        return extract(x)

    results = []
    threads = [threading.Thread(target=lambda: results.append(_stats(tmp_path, images, slow_extract)))
               for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [entry["read_from_cache"] for _, entry in results] == [False] * 4
    assert [p.name for p in tmp_path.iterdir()] == [Path(results[0][1]["path"]).name]  # no temporary files left
    loaded, entry = _stats(tmp_path, images, extract)
    assert entry["read_from_cache"]
    np.testing.assert_array_equal(loaded.mu, results[0][0].mu)


# ---------------------------------------------------------------------------- KID


def _mmd2_double_loop(x, y):
    k = lambda a, b: (float(np.dot(a, b)) / len(a) + 1.0) ** 3  # noqa: E731
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


# float32 kernels summed in float64: the error is relative to the kernel's size (about 1 here),
# not to MMD², which is a difference of such means
KID_ABS = 1e-5


def test_kid_equals_double_loop_unbiased_mmd2():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 5)), rng.normal(0.3, 1.2, size=(9, 5))
    assert M.polynomial_mmd2_unbiased(x, y) == pytest.approx(_mmd2_double_loop(x, y), abs=KID_ABS)

    # Subsets: mean and std of the double loop over the same random index draws.
    x, y = rng.normal(size=(12, 4)), rng.normal(0.5, 1.0, size=(10, 4))
    mean, std, m = M.kernel_inception_distance(x, y, subsets=6, subset_size=5, seed=3)
    draws = np.random.default_rng(3)
    values = []
    for _ in range(6):
        ix, iy = draws.choice(12, 5, replace=False), draws.choice(10, 5, replace=False)
        values.append(_mmd2_double_loop(x[ix], y[iy]))
    assert m == 5
    assert mean == pytest.approx(np.mean(values), abs=KID_ABS) and std == pytest.approx(np.std(values), abs=KID_ABS)

    # Subset size >= both set sizes: every subset is the whole set, computed once.
    mean, std, m = M.kernel_inception_distance(x[:10], y, subsets=50, subset_size=1000)
    assert (m, std) == (10, 0.0) and mean == pytest.approx(_mmd2_double_loop(x[:10], y), abs=KID_ABS)


def test_kid_float32_kernels_agree_with_float64_at_feature_scale():
    """At the size of a real evaluation (1,000-item subsets, 128-d features of unit scale, two
    nearby distributions) the float32 kernels change KID by far less than its subset spread."""
    rng = np.random.default_rng(2)
    x, y = np.abs(rng.normal(size=(1000, 128))), np.abs(rng.normal(0.02, 1.0, size=(1000, 128)))

    def float64(a, b):
        k = lambda u, v: (u @ v.T / a.shape[1] + 1.0) ** 3  # noqa: E731
        kxx, kyy, kxy = k(a, a), k(b, b), k(a, b)
        m = len(a)
        return ((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (m * (m - 1))
                - 2 * kxy.mean())

    exact = float64(x, y)
    scale = float(((x @ y.T / 128 + 1.0) ** 3).mean())
    assert abs(M.polynomial_mmd2_unbiased(x, y) - exact) < 1e-6 * scale
    _, spread, _ = M.kernel_inception_distance(np.vstack([x, x]), np.vstack([y, y]), subsets=5, seed=0)
    assert abs(M.polynomial_mmd2_unbiased(x, y) - exact) < 1e-3 * spread


def test_kid_is_near_zero_for_one_distribution_and_large_for_a_shift():
    rng = np.random.default_rng(1)
    a, b = np.abs(rng.normal(size=(200, 16))), np.abs(rng.normal(size=(200, 16)))
    same, same_std, _ = M.kernel_inception_distance(a, b, subsets=10, subset_size=100, seed=0)
    shifted, _, _ = M.kernel_inception_distance(a, b + 0.5, subsets=10, subset_size=100, seed=0)
    assert abs(same) < 3 * same_std + 1e-3
    assert shifted > 50 * abs(same) and shifted > 0.1


# ---------------------------------------------------------------------------- evaluator


class _Decoder(torch.nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.lin = torch.nn.Linear(dim, 64)

    def forward(self, z):
        return torch.sigmoid(self.lin(z)).reshape(-1, 1, 8, 8)


def _fid_setup(tmp_path):
    cfg = RunConfig()
    cfg.eval.fid.num_samples, cfg.eval.fid.dims, cfg.eval.fid.batch_size = 6, 64, 4
    cfg.eval.fid.cache_dir = str(tmp_path / "cache")
    g = torch.Generator().manual_seed(0)
    data = DataBundle("digits", torch.randint(0, 256, (10, 1, 8, 8), generator=g, dtype=torch.uint8),
                      torch.randint(0, 256, (9, 1, 8, 8), generator=g, dtype=torch.uint8))
    torch.manual_seed(0)
    model = torch.nn.Module()
    model.decoder = _Decoder(4)
    return cfg, data, build_prior("sphere", 4), model


def test_fid_evaluator_values_cache_and_provenance(hub, tmp_path):
    from harness.evaluators.fid import PROVENANCE_FILE
    from harness.evaluators import build_evaluator, make_context

    cfg, data, prior, model = _fid_setup(tmp_path)
    ev = build_evaluator("fid", make_context(cfg, data, prior, "cpu", tmp_path / "run"))
    out = ev(model, epoch=0)
    assert set(out) == {"fid", "kid", "kid_std", "fid_n"} and out["fid_n"] == 6
    assert all(isinstance(v, (int, float)) and np.isfinite(v) for v in out.values())

    # By hand: the prior draws of the stream "fid", decoded, quantised; the first 6 test images.
    z = prior.sample(6, generator=make_generator(cfg.eval.seed, "fid"))
    with torch.no_grad():
        gen = M.quantize(model.decoder(z))
    net = M.load_fid_network(dims=64)
    fg = M.FeatureStats.from_features(M.inception_features(gen, net))
    fr = M.FeatureStats.from_features(M.inception_features(data.test_x[:6], net))
    assert out["fid"] == pytest.approx(M.frechet_distance(fg, fr), rel=1e-6)
    assert out["kid"] == pytest.approx(M.polynomial_mmd2_unbiased(fg.features, fr.features), rel=1e-6)

    prov = json.loads((tmp_path / "run" / PROVENANCE_FILE).read_text())
    assert prov["n_generated"] == 6 and prov["n_reference"] == 6 and prov["split"] == "test"
    assert prov["weights_sha256"] == net.weights_sha256 and not prov["weights_are_official"]
    assert prov["versions"]["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert prov["versions"]["pytorch-fid"] and not prov["reference_read_from_cache"]

    # A second run reuses the reference statistics and reproduces the values.
    again = build_evaluator("fid", make_context(cfg, data, prior, "cpu", tmp_path / "run2"))
    assert json.loads((tmp_path / "run2" / PROVENANCE_FILE).read_text())["reference_read_from_cache"]
    assert again(model, epoch=1) == out


def test_fid_evaluator_rejects_vector_data(hub, tmp_path):
    from harness.evaluators import build_evaluator, make_context

    cfg, _, prior, _ = _fid_setup(tmp_path)
    vectors = DataBundle("synthetic", torch.zeros(5, 3), torch.zeros(5, 3))
    with pytest.raises(ConfigError, match="'fid' needs an image dataset"):
        build_evaluator("fid", make_context(cfg, vectors, prior, "cpu", None))


def test_the_written_out_pytorch_fid_constants_are_pytorch_fids():
    """harness.metrics.fid writes out two constants of pytorch-fid (no pytorch-fid import at start-up)."""
    from pytorch_fid.inception import FID_WEIGHTS_URL, InceptionV3

    from harness.metrics import fid
    assert fid.FID_WEIGHTS_URL == FID_WEIGHTS_URL and fid.FID_DIMS == tuple(InceptionV3.BLOCK_INDEX_BY_DIM)
