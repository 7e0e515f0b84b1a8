"""Precision, recall, density, coverage (harness/metrics/prdc.py, harness/evaluators/prdc.py)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from prdc import compute_prdc  # the authors' reference implementation (dev dependency)

from harness.config import ConfigError, config_from_dict
from harness.metrics.prdc import knn_radii, prdc


@pytest.mark.parametrize("n,m,d,k,shift", [(200, 150, 8, 5, 0.3), (300, 100, 4, 10, 1.0), (120, 120, 16, 3, 0.0)])
def test_equals_the_reference_package(n, m, d, k, shift):
    rng = np.random.default_rng(n + k)
    real, fake = rng.normal(size=(n, d)), rng.normal(size=(m, d)) + shift
    with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the set sizes
        expected = compute_prdc(real, fake, k)
    ours = prdc(real, fake, k, chunk=37)  # chunks that do not divide the sets
    for key in ("precision", "recall", "density", "coverage"):
        assert ours[key] == pytest.approx(float(expected[key]), abs=1e-12), key
    assert prdc(real, fake, k, real_radii=knn_radii(real, k)) == ours


def test_hand_made_cases():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 16)) * 10  # ten well separated classes
    labels = np.repeat(np.arange(10), 60)
    real = centres[labels] + rng.normal(size=(600, 16))
    same = prdc(real, real, 5)
    assert (same["precision"], same["recall"], same["coverage"]) == (1.0, 1.0, 1.0)
    # density: each real ball holds itself and k - 1 others strictly inside, so 1; the k-th
    # neighbour sits on the boundary, where rounding of the distances may count it (1/kM each).
    assert same["density"] == pytest.approx(1.0, abs=5 / (5 * 600))
    # Samples of the same distribution that never show two of the classes: recall and coverage
    # drop by about the missing fifth, precision stays.
    fresh = centres[labels] + rng.normal(size=(600, 16))
    missing = fresh[labels < 8]
    full, partial = prdc(real, fresh, 5), prdc(real, missing, 5)
    assert partial["precision"] >= full["precision"] - 0.02 and partial["precision"] > 0.9
    assert partial["recall"] < full["recall"] - 0.15 and partial["coverage"] < full["coverage"] - 0.15
    with pytest.raises(ValueError, match="k must be in"):
        knn_radii(real[:5], 5)


class _Decoder(torch.nn.Module):
    def __init__(self, images):
        super().__init__()
        self.images = images.float() / 255

    def forward(self, z):
        return self.images[: len(z)]


def test_evaluator_in_the_domain_feature_space(tmp_path, monkeypatch):
    from harness.datasets import load_dataset
    from harness.evaluators.prdc import PROVENANCE_FILE
    from harness.evaluators import build_evaluator, make_context
    from harness.evaluators import lenet_training as L
    from harness.priors import build_prior

    monkeypatch.setattr(L, "RECIPE", {**L.RECIPE, "steps": 30, "batch_size": 64})
    cfg = config_from_dict({"data": {"name": "digits", "root": str(tmp_path / "data")},
                            "eval": {"metrics": ["prdc"], "fid": {"cache_dir": str(tmp_path / "fid")},
                                     "prdc": {"features": "lenet", "k": 3, "num_samples": 100}}})
    data = load_dataset(cfg.data)
    ev = build_evaluator("prdc", make_context(cfg, data, build_prior("sphere", 4), "cpu", tmp_path / "run"))
    prov = json.loads((tmp_path / "run" / PROVENANCE_FILE).read_text())
    assert prov["features"] == "lenet" and prov["k"] == 3 and prov["n_reference"] == 100
    model = torch.nn.Module()
    model.decoder = _Decoder(data.test_x)  # "generates" exactly the reference images
    out = ev(model, 1)
    assert (out["precision"], out["recall"], out["coverage"]) == (1.0, 1.0, 1.0)
    assert out["density"] == pytest.approx(1.0, abs=0.05)


def test_bad_settings_are_refused_at_config_validation():
    cases = [({"prdc": {"k": 10, "num_samples": 10}}, None, r"^eval\.prdc\.k: got 10"),
             ({"prdc": {"k": 8}}, {"name": "digits", "test_limit": 8}, r"^eval\.prdc\.k: got 8; allowed: 1 to 7"),
             ({"prdc": {"features": "vgg"}}, None, r"^eval\.prdc\.features: got 'vgg'"),
             ({}, {"name": "synthetic"}, r"^eval\.metrics: 'prdc' needs an image dataset"),
             ({"prdc": {"features": "lenet"}}, {"name": "celeba"}, r"^eval\.prdc\.features: 'lenet' is trained on class labels")]
    for ev, data, pattern in cases:
        with pytest.raises(ConfigError, match=pattern) as err:
            config_from_dict({"data": data or {"name": "digits"}, "eval": {"metrics": ["prdc"], **ev}})
        assert "\n" not in str(err.value)


def test_mode_collapse_keeps_recall_and_lowers_coverage():
    """The documented behaviour (docs/evaluation.md): MNIST with 90 % of the images replaced by
    copies of 10 images keeps a high recall (recall asks whether each real image lies in the
    k-NN ball of some fake, and the 100 distinct fakes with their wide balls cover most of them)
    while coverage (the real images whose own ball holds a fake) falls; so diversity claims are
    compared by coverage. Pixel space, 1,000 images, k = 5."""
    import os
    from pathlib import Path

    from harness.datasets.mnist import read_idx
    path = Path(os.environ.get("MOCA_DATA_ROOT", "data")) / "MNIST" / "raw" / "train-images-idx3-ubyte.gz"
    if not path.is_file():
        pytest.skip("MNIST not available")
    x = read_idx(path)[:2000].double().reshape(-1, 784) / 255
    real, clean = x[:1000], x[1000:]
    rng = np.random.default_rng(0)
    collapsed = clean.clone()
    replaced = rng.permutation(1000)[:900]
    collapsed[replaced] = clean[rng.permutation(1000)[:10]][np.arange(900) % 10]
    ok, bad = prdc(real, clean, 5), prdc(real, collapsed, 5)
    assert bad["recall"] > 0.9 and bad["recall"] >= 0.95 * ok["recall"]  # recall does not see it
    assert bad["coverage"] < 0.5 * ok["coverage"]  # coverage does
    with contextlib.redirect_stdout(io.StringIO()):
        ref = compute_prdc(real.numpy(), collapsed.numpy(), 5)
    assert bad["recall"] == pytest.approx(float(ref["recall"])) and bad["coverage"] == pytest.approx(float(ref["coverage"]))
