"""The S-VAE: vMF KL against numerical integration, the sampler's moments against A_d(κ),
gradients through the sampler against finite differences of exact expectations, the
method-owned latent map (sample in training, mean direction in eval), config validation,
and a checkpoint round trip."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.integrate as si
import scipy.optimize as so
import scipy.special as sp
import torch
from torch import nn

from harness.config import ConfigError, config_from_dict
from harness.priors import build_prior
from harness.run_folder import load_checkpoint, save_checkpoint
from harness.trainer import Trainer
from harness.methods import REGULARIZERS, RegularizerContext
from harness.methods._vmf import (domega_dkappa, kl_to_uniform, log_sphere_area, mean_resultant_length,
                          sample_omega, sample_vmf)

# ---------------------------------------------------------------- references by quadrature
# The marginal of ω = μᵀz under vMF(μ, κ) on S^{d−1} is p(ω) ∝ e^{κω} (1 − ω²)^{(d−3)/2}
# on [−1, 1]; scipy's algebraic-weight quadrature handles the endpoint factor for every d.


def _weighted(f, d, lo=-1.0, hi=1.0):
    """∫_lo^hi f(t) (1 − t²)^{(d−3)/2} dt; the algebraic weight for the singular d = 2."""
    a = (d - 3) / 2
    if a >= 0:
        return si.quad(lambda t: f(t) * (1 - t * t) ** a, lo, hi, epsabs=0, epsrel=1e-12, limit=400)[0]
    if lo == -1.0 and hi == 1.0:
        return si.quad(f, -1, 1, weight="alg", wvar=(a, a), epsabs=0, epsrel=1e-12, limit=200)[0]
    return si.quad(lambda t: f(t) * (1 - t) ** a, -1, hi, weight="alg", wvar=(a, 0),
                   epsabs=0, epsrel=1e-12, limit=200)[0]


def kl_by_quadrature(kappa: float, d: int) -> float:
    """KL = E_q[log q] + log|S^{d−1}| with q = e^{κω}/Z_d(κ), Z_d by quadrature (no Bessel)."""
    z_scaled = _weighted(lambda t: math.exp(kappa * (t - 1)), d)  # e^{−κ}∫e^{κt}(1−t²)^α dt
    e_omega = _weighted(lambda t: t * math.exp(kappa * (t - 1)), d) / z_scaled
    log_area_below = log_sphere_area(d - 1)  # |S^{d−2}| (S^0: 2 points)
    log_z = math.log(z_scaled) + kappa + log_area_below  # normaliser over the sphere
    return kappa * e_omega - log_z + log_sphere_area(d)


def omega_moment(kappa: float, d: int, power: int) -> float:
    z = _weighted(lambda t: math.exp(kappa * (t - 1)), d)
    return _weighted(lambda t: t**power * math.exp(kappa * (t - 1)), d) / z


@pytest.mark.parametrize("d", [2, 3, 6, 16, 64])
@pytest.mark.parametrize("kappa", [0.3, 1.0, 10.0, 150.0])
def test_kl_to_uniform_matches_numerical_integration(d, kappa):
    value = float(kl_to_uniform(torch.tensor([kappa], dtype=torch.float64), d))
    assert value == pytest.approx(kl_by_quadrature(kappa, d), rel=1e-7, abs=1e-9)


def test_kl_is_zero_at_kappa_zero_and_increasing():
    k = torch.tensor([1e-6, 0.5, 1.0, 5.0, 50.0], dtype=torch.float64)
    kl = kl_to_uniform(k, 8)
    assert float(kl[0]) == pytest.approx(0.0, abs=1e-9)
    assert torch.all(kl[1:] > kl[:-1])


def test_kl_and_mean_resultant_length_gradients_match_finite_differences():
    k = torch.tensor([0.4, 2.0, 30.0], dtype=torch.float64, requires_grad=True)
    for d in (2, 5, 32):
        assert torch.autograd.gradcheck(lambda t: kl_to_uniform(t, d), (k,))
        assert torch.autograd.gradcheck(lambda t: mean_resultant_length(t, d), (k,))


@pytest.mark.parametrize("d", [3, 10, 100])
def test_mean_resultant_length_is_the_bessel_ratio(d):
    k = np.array([0.1, 1.0, 7.0, 300.0])
    expected = sp.ive(d / 2, k) / sp.ive(d / 2 - 1, k)
    got = mean_resultant_length(torch.from_numpy(k), d).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-12)


@pytest.mark.parametrize("d,kappa", [(2, 0.5), (2, 100.0), (3, 5.0), (6, 1.0), (16, 40.0), (64, 10.0)])
def test_sampler_mean_resultant_length_is_A_d(d, kappa):
    """Samples z ~ vMF(μ, κ): ‖mean z‖ and the mean of μᵀz match A_d(κ), E[(μᵀz)²] matches
    quadrature, within 4 standard errors; every sample has unit norm."""
    n = 40000
    g = torch.Generator().manual_seed(d * 1000 + int(kappa))
    mu = torch.nn.functional.normalize(torch.randn(1, d, generator=g, dtype=torch.float64), dim=1)
    z = sample_vmf(mu.expand(n, d), torch.full((n,), kappa, dtype=torch.float64), g)
    assert torch.allclose(z.norm(dim=1), torch.ones(n, dtype=torch.float64), atol=1e-10)
    a = float(mean_resultant_length(torch.tensor([kappa], dtype=torch.float64), d))
    omega = (z @ mu.T).squeeze(1)
    se = float(omega.std()) / math.sqrt(n)
    assert abs(float(omega.mean()) - a) < 4 * se
    assert abs(float(z.mean(0).norm()) - a) < 4 * se + 2 / math.sqrt(n)  # + the tangent components' noise
    se2 = float((omega**2).std()) / math.sqrt(n)
    assert abs(float((omega**2).mean()) - omega_moment(kappa, d, 2)) < 4 * se2


def test_sampler_uses_only_its_generator():
    mu = torch.nn.functional.normalize(torch.randn(5, 4), dim=1)
    k = torch.tensor([1.0, 2.0, 3.0, 40.0, 0.5])
    a = sample_vmf(mu, k, torch.Generator().manual_seed(3))
    torch.manual_seed(123)
    b = sample_vmf(mu, k, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a, sample_vmf(mu, k, torch.Generator().manual_seed(4)))


def _cdf(w, kappa, d):
    """F(ω; κ) by quadrature; the survival side above the mean keeps it accurate near 1."""
    z = _weighted(lambda t: math.exp(kappa * (t - 1)), d)
    return _weighted(lambda t: math.exp(kappa * (t - 1)), d, hi=w) / z


@pytest.mark.parametrize("d", [2, 3, 7, 20])
@pytest.mark.parametrize("kappa", [0.7, 6.0, 60.0])
def test_implicit_gradient_is_the_derivative_of_the_inverse_cdf(d, kappa):
    """dω/dκ at fixed F(ω; κ) = u, by central differences of F⁻¹(u; κ ± h) (quadrature + root)."""
    for u in (0.05, 0.3, 0.7, 0.95):
        w = so.brentq(lambda x: _cdf(x, kappa, d) - u, -1 + 1e-12, 1 - 1e-14, xtol=1e-15)
        h = 1e-4 * kappa
        wp = so.brentq(lambda x: _cdf(x, kappa + h, d) - u, -1 + 1e-12, 1 - 1e-14, xtol=1e-15)
        wm = so.brentq(lambda x: _cdf(x, kappa - h, d) - u, -1 + 1e-12, 1 - 1e-14, xtol=1e-15)
        fd = (wp - wm) / (2 * h)
        got = float(domega_dkappa(torch.tensor([w], dtype=torch.float64),
                                  torch.tensor([kappa], dtype=torch.float64), d))
        assert got == pytest.approx(fd, rel=1e-5), (u, w)


def test_gradients_through_the_sampler_match_finite_differences_of_the_exact_expectation():
    """∇ E[f(z)] for f(z) = (bᵀz)², z ~ vMF(h/‖h‖, κ): the mean of per-sample autograd
    gradients (w.r.t. κ and the raw direction h) agrees within 4 standard errors with central
    differences of the exact expectation
        E f = (bᵀμ)² E[ω²] + (‖b‖² − (bᵀμ)²)(1 − E[ω²])/(d − 1),  E[ω²] by quadrature."""
    d, kappa0, n = 5, 3.0, 60000
    g = torch.Generator().manual_seed(0)
    b = torch.randn(d, generator=g, dtype=torch.float64)
    h0 = torch.randn(d, generator=g, dtype=torch.float64)

    def exact(h, kappa):
        mu = h / np.linalg.norm(h)
        e2 = omega_moment(kappa, d, 2)
        bm = float(np.dot(b.numpy(), mu))
        return bm**2 * e2 + (float(b @ b) - bm**2) * (1 - e2) / (d - 1)

    kappa = torch.full((n,), kappa0, dtype=torch.float64, requires_grad=True)
    h = h0.expand(n, d).clone().requires_grad_(True)
    z = sample_vmf(torch.nn.functional.normalize(h, dim=1), kappa, g)
    ((z @ b) ** 2).sum().backward()
    eps = 1e-5
    fd_kappa = (exact(h0.numpy(), kappa0 + eps) - exact(h0.numpy(), kappa0 - eps)) / (2 * eps)
    gk = kappa.grad
    assert abs(float(gk.mean()) - fd_kappa) < 4 * float(gk.std()) / math.sqrt(n)
    for i in range(d):
        e = np.zeros(d)
        e[i] = eps
        fd = (exact(h0.numpy() + e, kappa0) - exact(h0.numpy() - e, kappa0)) / (2 * eps)
        gi = h.grad[:, i]
        assert abs(float(gi.mean()) - fd) < 4 * float(gi.std()) / math.sqrt(n) + 1e-9, i


# ---------------------------------------------------------------- the regularizer


def make_svae(dim=4, in_dim=6):
    prior = build_prior("sphere", dim)
    encoder = nn.Linear(in_dim, dim + REGULARIZERS.get("svae").extra_outputs(None))
    ctx = RegularizerContext(encoder=encoder, project=prior.project, prior=prior, latent_dim=dim,
                             total_steps=10, generator=torch.Generator().manual_seed(0),
                             device=torch.device("cpu"))
    cls = REGULARIZERS.get("svae")
    return cls(cls.Config(), ctx), encoder


def test_latent_is_a_sample_in_training_and_the_mean_direction_in_eval():
    svae, enc = make_svae()
    x = torch.randn(8, 6)
    h = enc(x)
    mu = torch.nn.functional.normalize(h[:, :4], dim=1)
    enc.train()
    z = svae.latent(h)
    assert z.shape == (8, 4) and not torch.allclose(z, mu)
    assert torch.allclose(z.norm(dim=1), torch.ones(8), atol=1e-5)
    kappa = torch.nn.functional.softplus(h[:, 4]) + 1.0
    assert svae.loss(z, x).item() == pytest.approx(kl_to_uniform(kappa.double(), 4).mean().item(), rel=1e-6)
    enc.eval()
    assert torch.equal(svae.latent(h), mu)


def test_loss_reaches_the_encoder_through_kappa_and_the_sample_through_mu():
    svae, enc = make_svae()
    enc.train()
    x = torch.randn(8, 6)
    z = svae.latent(enc(x))
    (svae.loss(z, x) + z[:, 0].sum()).backward()
    assert enc.weight.grad[4].abs().sum() > 0  # the κ row
    assert enc.weight.grad[:4].abs().sum() > 0  # the direction rows


SVAE_RUN = {
    "data": {"name": "synthetic", "num_points": 96, "input_dim": 10},
    "model": {"arch": "mlp", "hidden": [16], "latent_dim": 3, "prior": "sphere"},
    "method": {"name": "svae", "weight": 1.0},
    "optim": {"lr": 1e-3},
    "train": {"epochs": 2, "batch_size": 32, "device": "cpu", "progress": "off"},
    "eval": {"every": 1, "metrics": ["recon"]},
    "seed": 0,
}


def test_trainer_builds_the_extra_kappa_output_and_evaluates_with_the_mean_direction():
    trainer = Trainer(config_from_dict(SVAE_RUN))
    last = trainer.model.encoder[-1][-1]
    assert last.out_features == 4 and trainer.model.decoder[0][0].in_features == 3
    assert trainer.model.latent_map == trainer.regularizer.latent
    x = next(trainer.batches(1))
    _, recon, kl = trainer.train_step(x)
    assert kl.item() > 0
    trainer.model.eval()
    with torch.no_grad():
        mu = torch.nn.functional.normalize(trainer.model.encoder(trainer.data.test_x)[:, :3], dim=1)
        expected = (trainer.model.decoder(mu) - trainer.data.test_x).pow(2).sum(1).mean().item()
    assert trainer.evaluate()["test_recon"] == pytest.approx(expected, rel=1e-5)


def test_checkpoint_round_trip_continues_the_same_samples(tmp_path):
    a = Trainer(config_from_dict(SVAE_RUN))
    a.train_epoch()
    save_checkpoint(tmp_path / "c.pt", a.state_dict())
    b = Trainer(config_from_dict(SVAE_RUN))
    b.load_state_dict(load_checkpoint(tmp_path / "c.pt"))
    ra, rb = a.train_epoch(), b.train_epoch()
    assert ra["loss"] == rb["loss"] and ra["reg_kappa"] == rb["reg_kappa"]
    for k, v in a.model.state_dict().items():
        assert torch.equal(v, b.model.state_dict()[k]), k


@pytest.mark.parametrize("change,key", [
    ({"model": {"prior": "gaussian"}}, "model.prior"),
    ({"model": {"latent_dim": 1}}, "model.latent_dim"),
    ({"method": {"name": "svae", "kappa_offset": -1.0}}, "method.kappa_offset"),
    ({"method": {"name": "svae", "posterior": "gauss"}}, "method.posterior"),
    ({"method": {"name": "svae", "posterior": "power_spherical", "kappa_offset": 0.0}}, "method.kappa_offset"),
])
def test_config_errors_name_the_key(change, key):
    tree = {**SVAE_RUN, **{s: {**SVAE_RUN[s], **v} for s, v in change.items()}}
    with pytest.raises(ConfigError) as err:
        config_from_dict(tree)
    assert err.value.key == key and "\n" not in str(err.value)


# ---------------------------------------------------------------- the Power Spherical option
# PS(μ, κ) on S^{d−1} has density ∝ (1 + μᵀz)^κ, so t = μᵀz has p(t) ∝ (1 + t)^κ (1 − t²)^{(d−3)/2}.

from harness.methods.svae import power_spherical_kl, sample_power_spherical  # noqa: E402


def _ps_moment(kappa, d, f):
    z = _weighted(lambda t: ((1 + t) / 2) ** kappa, d)
    return _weighted(lambda t: f(t) * ((1 + t) / 2) ** kappa, d) / z


@pytest.mark.parametrize("d", [2, 3, 16])
@pytest.mark.parametrize("kappa", [0.5, 5.0, 50.0])
def test_power_spherical_kl_matches_numerical_integration(d, kappa):
    """KL = κ E[log(1 + t)] − log N + log|S^{d−1}|, N = |S^{d−2}| ∫ (1+t)^κ (1−t²)^α dt."""
    z_scaled = _weighted(lambda t: ((1 + t) / 2) ** kappa, d)  # 2^{−κ} ∫ (1+t)^κ (1−t²)^α dt
    log_n = math.log(z_scaled) + kappa * math.log(2) + log_sphere_area(d - 1)
    e_log = _ps_moment(kappa, d, lambda t: math.log1p(t) if t > -1 else 0.0)
    expected = kappa * e_log - log_n + log_sphere_area(d)
    got = float(power_spherical_kl(torch.tensor([kappa], dtype=torch.float64), d))
    assert got == pytest.approx(expected, rel=1e-6, abs=1e-6)  # quadrature: differences of O(10) terms


@pytest.mark.parametrize("d,kappa", [(3, 2.0), (16, 30.0)])
def test_power_spherical_sampler_mean_and_generator(d, kappa):
    n = 40000
    g = torch.Generator().manual_seed(1)
    mu = torch.nn.functional.normalize(torch.randn(1, d, dtype=torch.float64, generator=g), dim=1)
    torch.manual_seed(0)
    before = torch.get_rng_state()
    z = sample_power_spherical(mu.expand(n, d), torch.full((n,), kappa, dtype=torch.float64), g)
    assert torch.equal(torch.get_rng_state(), before)  # the global stream is left alone
    t = (z @ mu.T).squeeze(1)
    assert abs(float(t.mean()) - kappa / (d - 1 + kappa)) < 4 * float(t.std()) / math.sqrt(n)
    g2 = torch.Generator().manual_seed(1)
    torch.nn.functional.normalize(torch.randn(1, d, dtype=torch.float64, generator=g2), dim=1)
    again = sample_power_spherical(mu.expand(n, d), torch.full((n,), kappa, dtype=torch.float64), g2)
    assert torch.equal(z, again)


def test_power_spherical_gradients_match_finite_differences_of_the_exact_expectation():
    d, kappa0, n = 4, 2.5, 60000
    g = torch.Generator().manual_seed(0)
    b = torch.randn(d, generator=g, dtype=torch.float64)

    def exact(kappa):
        e2 = _ps_moment(kappa, d, lambda t: t * t)
        return (float(b[0]) ** 2) * e2 + (float(b @ b) - float(b[0]) ** 2) * (1 - e2) / (d - 1)

    mu = torch.zeros(n, d, dtype=torch.float64)
    mu[:, 0] = 1
    kappa = torch.full((n,), kappa0, dtype=torch.float64, requires_grad=True)
    z = sample_power_spherical(mu, kappa, g)
    ((z @ b) ** 2).sum().backward()
    fd = (exact(kappa0 + 1e-5) - exact(kappa0 - 1e-5)) / 2e-5
    gk = kappa.grad
    assert abs(float(gk.mean()) - fd) < 4 * float(gk.std()) / math.sqrt(n)


def test_power_spherical_run_resumes_bitwise(tmp_path, monkeypatch):
    from harness.train import train_run
    from test_trainer import assert_same_run, interrupt_after_epoch

    tree = {**SVAE_RUN, "method": {"name": "svae", "weight": 1.0, "posterior": "power_spherical"},
            "train": {**SVAE_RUN["train"], "epochs": 3}}
    cfg = config_from_dict(tree)
    assert train_run(cfg, tmp_path / "straight") == "done"
    interrupt_after_epoch(cfg, tmp_path / "resumed", 2, monkeypatch)
    assert train_run(cfg, tmp_path / "resumed") == "done"
    assert_same_run(tmp_path / "straight", tmp_path / "resumed")
