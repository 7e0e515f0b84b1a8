"""Latent diagnostics (harness/metrics/latent.py) and the ``latent`` evaluator, checked against
POT, numpy and hand computations."""

from __future__ import annotations

import math

import numpy as np
import ot
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from harness.archs import AutoEncoder
from harness.atomic import read_jsonl
from harness.config import RunConfig
from harness.datasets import DataBundle
from harness.evaluators import build_evaluator, make_context
from harness.metrics import latent as L
from harness.priors import build_prior


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _sphere(n: int, d: int, seed: int) -> torch.Tensor:
    return F.normalize(torch.randn(n, d, generator=_gen(seed)), dim=-1)


@pytest.mark.parametrize("m", [60, 45])  # equal sizes (sort route) and unequal (POT route)
def test_sliced_wasserstein_equals_pot_with_same_projections(m):
    x = torch.randn(60, 7, generator=_gen(0)).double()
    y = 0.5 + 2 * torch.randn(m, 7, generator=_gen(1)).double()
    proj = L.random_projections(7, 33, _gen(2))
    assert torch.allclose(proj.norm(dim=0), torch.ones(33, dtype=torch.float64))
    ours = L.sliced_wasserstein(x, y, proj)
    ref = ot.sliced_wasserstein_distance(x.numpy(), y.numpy(), projections=proj.numpy(), p=2)
    assert ours == pytest.approx(float(ref), rel=1e-5)


def test_sphere_swd_equals_pot_with_same_planes():
    z = _sphere(80, 5, 0)
    planes = ot.sliced.get_projections_sphere(5, 40, seed=3)  # numpy (40, 5, 2)
    ref = ot.sliced_wasserstein_sphere_unif(z.double().numpy(), n_projections=40, seed=3)
    assert L.sphere_sliced_wasserstein_unif(z, torch.from_numpy(planes)) == pytest.approx(float(ref), rel=1e-4)
    ours = L.sphere_projections(5, 40, _gen(1))
    eye = torch.eye(2, dtype=torch.float64).expand(40, 2, 2)
    assert torch.allclose(ours.transpose(1, 2) @ ours, eye, atol=1e-12)  # orthonormal 2-frames


def test_uniform_latents_are_closer_to_prior_than_collapsed_ones():
    d, n = 16, 400
    prior = _sphere(n, d, 0)
    uniform = _sphere(n, d, 1)
    collapsed = F.normalize(torch.ones(n, d) + 0.05 * torch.randn(n, d, generator=_gen(2)), dim=-1)
    proj = L.random_projections(d, 64, _gen(3))
    planes = L.sphere_projections(d, 64, _gen(4))
    assert L.sliced_wasserstein(uniform, prior, proj) < 0.3 * L.sliced_wasserstein(collapsed, prior, proj)
    assert L.sphere_sliced_wasserstein_unif(uniform, planes) < 0.3 * L.sphere_sliced_wasserstein_unif(collapsed, planes)
    assert L.uniformity(uniform) < L.uniformity(collapsed) - 1.0
    assert L.mean_norm(uniform) < 0.2 < 0.9 < L.mean_norm(collapsed)


def test_singular_values_match_numpy_and_summary_by_hand():
    z = torch.randn(50, 6, generator=_gen(0))
    np_sv = np.linalg.svd(z.double().numpy(), compute_uv=False)
    assert np.allclose(L.singular_values(z).numpy(), np_sv, rtol=1e-10)
    # diag(4, 3): energies 16/25 and 9/25
    s = L.spectrum_summary(L.singular_values(torch.tensor([[4.0, 0.0], [0.0, 3.0]])))
    p = np.array([16, 9]) / 25
    assert s["sv_max"] == pytest.approx(4) and s["sv_min"] == pytest.approx(3)
    assert s["sv_ratio"] == pytest.approx(4 / 3)
    assert s["sv_entropy"] == pytest.approx(float(-(p * np.log(p)).sum() / np.log(2)))
    assert L.spectrum_summary(torch.ones(4, dtype=torch.float64))["sv_entropy"] == pytest.approx(1.0)


def test_uniformity_matches_double_loop():
    z = torch.randn(7, 3, generator=_gen(5))
    vals = [math.exp(-2 * float((z[i] - z[j]).pow(2).sum())) for i in range(7) for j in range(i + 1, 7)]
    assert L.uniformity(z) == pytest.approx(math.log(sum(vals) / len(vals)), rel=1e-5)
    # Wang & Isola's reference expression
    ref = torch.pdist(z.double()).pow(2).mul(-2).exp().mean().log()
    assert L.uniformity(z) == pytest.approx(float(ref), rel=1e-5)
    assert L.mean_norm(torch.tensor([[1.0, 2.0], [3.0, 2.0]])) == pytest.approx(math.hypot(2, 2))


# ---------------------------------------------------------------- the evaluator


def _setup(prior_name: str, encoder: nn.Module, n_train: int = 300, d: int = 8, tmp_path=None):
    cfg = RunConfig()
    cfg.model.latent_dim, cfg.model.prior = d, prior_name
    cfg.eval.num_samples, cfg.eval.projections = 200, 50
    x = torch.randn(n_train, d, generator=_gen(11))
    data = DataBundle("vectors", x, torch.randn(20, d, generator=_gen(12)))
    prior = build_prior(prior_name, d)
    model = AutoEncoder(encoder, nn.Linear(d, d)).eval()
    ev = build_evaluator("latent", make_context(cfg, data, prior, "cpu", tmp_path))
    return ev, model


def test_evaluator_keys_determinism_and_spectrum_file(tmp_path):
    ev, model = _setup("sphere", nn.Identity(), tmp_path=tmp_path)
    assert len(ev.x) == 200  # first num_samples training items
    a = ev(model, 0)
    b = ev(model, 1)
    assert a == b  # fixed prior sample and projections: same model, same numbers
    assert set(a) == {
        "latent_swd", "latent_sphere_swd", "latent_uniformity", "latent_mean_norm",
        "latent_sv_max", "latent_sv_min", "latent_sv_ratio", "latent_sv_entropy",
    }
    z = F.normalize(ev.x, dim=-1)
    assert a["latent_swd"] == pytest.approx(L.sliced_wasserstein(z, ev.prior_samples, ev.projections), rel=1e-6)
    rows = read_jsonl(tmp_path / "latent_singular_values.jsonl")
    assert [r["epoch"] for r in rows] == [0, 1]
    assert np.allclose(rows[0]["singular_values"], np.linalg.svd(z.double().numpy(), compute_uv=False))
    ev(model, 1)  # a resumed run re-evaluating epoch 1 replaces its line
    assert [r["epoch"] for r in read_jsonl(tmp_path / "latent_singular_values.jsonl")] == [0, 1]


def test_evaluator_separates_uniform_from_collapsed_encoder():
    good, model_good = _setup("sphere", nn.Identity())  # Gaussian data -> uniform directions
    collapsed = nn.Linear(8, 8)
    with torch.no_grad():
        collapsed.weight.mul_(0.01)
        collapsed.bias.fill_(1.0)
    bad, model_bad = _setup("sphere", collapsed)
    g, b = good(model_good, 0), bad(model_bad, 0)
    for key in ("latent_swd", "latent_sphere_swd", "latent_uniformity", "latent_mean_norm", "latent_sv_ratio"):
        assert g[key] < b[key], key
    assert g["latent_sv_entropy"] > b["latent_sv_entropy"]


def test_gaussian_prior_uses_direction_keys_and_writes_nothing_without_run_dir():
    ev, model = _setup("gaussian", nn.Identity())
    out = ev(model, 0)
    assert {"latent_dir_sphere_swd", "latent_dir_uniformity", "latent_swd"} <= set(out)
    assert "latent_sphere_swd" not in out
    # latents are Gaussian like the prior: far closer than a shifted copy
    shifted = L.sliced_wasserstein(ev.x + 3.0, ev.prior_samples, ev.projections)
    assert out["latent_swd"] < 0.2 * shifted
