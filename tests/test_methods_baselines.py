"""Baseline latent regularizers (mmd, swd, sinkhorn, wae_gan, cwae) against references.

Values are compared with a direct double loop (MMD), POT (sliced Wasserstein, Sinkhorn and
its envelope gradient), and the CWAE paper's formula written in numpy (itself checked,
with the exact φ_D = ₁F₁(1/2; D/2; −s) from scipy, against a Monte Carlo evaluation of the
Cramer-Wold distance's definition).
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np
import ot
import pytest
import scipy.special
import torch
from torch import nn

from harness.config import ConfigError, config_from_dict
from harness.priors import build_prior
from harness.methods import REGULARIZERS, RegularizerContext
from harness.methods.cwae import cw_normality
from harness.methods.mmd import mmd_unbiased
from harness.methods.sinkhorn import sinkhorn_cost, sinkhorn_plan
from harness.methods.swd import sliced_wasserstein2

BASELINES = ["mmd", "swd", "sinkhorn", "wae_gan", "cwae"]
IN_DIM = 5


def make_ctx(prior: str = "gaussian", dim: int = 3, seed: int = 0) -> RegularizerContext:
    g = torch.Generator().manual_seed(1000 + seed)
    encoder = nn.Linear(IN_DIM, dim)
    with torch.no_grad():
        encoder.weight.copy_(torch.randn(dim, IN_DIM, generator=g))
        encoder.bias.copy_(torch.randn(dim, generator=g))
    p = build_prior(prior, dim)
    return RegularizerContext(
        encoder=encoder, project=p.project, prior=p, latent_dim=dim, total_steps=10,
        generator=torch.Generator().manual_seed(seed), device=torch.device("cpu"),
    )


def make_reg(name: str, ctx: RegularizerContext, **params):
    cls = REGULARIZERS.get(name)
    cfg = cls.Config(**params)
    cfg.check("method")
    return cls(cfg, ctx)


def clone(g: torch.Generator) -> torch.Generator:
    h = torch.Generator(device=g.device)
    h.set_state(g.get_state())
    return h


def latents(ctx: RegularizerContext, n: int = 8, seed: int = 7) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(n, IN_DIM, generator=torch.Generator().manual_seed(seed))
    return ctx.project(ctx.encoder(x)), x


def test_registry_has_the_baselines():
    assert set(BASELINES) <= set(REGULARIZERS.names())


# ---------------------------------------------------------------------------- MMD


def _kernel(a, b, kernel, scales, base):
    d2 = float(((a - b) ** 2).sum())
    return sum(base * s / (base * s + d2) if kernel == "imq" else math.exp(-d2 / (base * s)) for s in scales)


@pytest.mark.parametrize("kernel", ["imq", "rbf"])
def test_mmd_matches_double_loop(kernel):
    g = torch.Generator().manual_seed(3)
    z, y = torch.randn(5, 3, generator=g, dtype=torch.float64), torch.randn(5, 3, generator=g, dtype=torch.float64)
    scales, base, n = [0.5, 1.0, 4.0], 6.0, 5
    zz = sum(_kernel(z[i], z[j], kernel, scales, base) for i in range(n) for j in range(n) if i != j)
    yy = sum(_kernel(y[i], y[j], kernel, scales, base) for i in range(n) for j in range(n) if i != j)
    zy = sum(_kernel(z[i], y[j], kernel, scales, base) for i in range(n) for j in range(n))
    expected = (zz + yy) / (n * (n - 1)) - 2 * zy / n**2
    assert float(mmd_unbiased(z, y, kernel, scales, base)) == pytest.approx(expected, rel=1e-10, abs=1e-12)


@pytest.mark.parametrize("prior,base", [("gaussian", 2.0 * 4), ("sphere", 2.0)])
def test_mmd_loss_uses_prior_scale_and_own_samples(prior, base):
    ctx = make_ctx(prior, dim=4)
    reg = make_reg("mmd", ctx, kernel="imq")
    assert reg.base == pytest.approx(base)  # C = 2·d·σ², σ² = 1 (gaussian) or 1/d (sphere)
    z, x = latents(ctx)
    y = ctx.prior.sample(z.shape[0], generator=clone(ctx.generator))
    expected = mmd_unbiased(z, y, "imq", reg.config.scales, base)
    assert torch.allclose(reg.loss(z, x), expected)


# ---------------------------------------------------------------------------- SWD


def test_swd_is_square_of_pot_sliced_wasserstein():
    g = torch.Generator().manual_seed(4)
    z, y = torch.randn(7, 3, generator=g, dtype=torch.float64), torch.randn(7, 3, generator=g, dtype=torch.float64) + 1
    theta = torch.nn.functional.normalize(torch.randn(11, 3, generator=g, dtype=torch.float64), dim=1)
    ref = ot.sliced_wasserstein_distance(z.numpy(), y.numpy(), n_projections=11, p=2, projections=theta.T.numpy())
    assert float(sliced_wasserstein2(z, y, theta)) == pytest.approx(ref**2, rel=1e-10)


def test_swd_loss_draws_prior_then_directions_from_own_stream():
    ctx = make_ctx("sphere", dim=3)
    reg = make_reg("swd", ctx, num_projections=9)
    z, x = latents(ctx)
    g = clone(ctx.generator)
    y = ctx.prior.sample(z.shape[0], generator=g)
    theta = torch.nn.functional.normalize(torch.randn(9, 3, generator=g), dim=1)
    ref = ot.sliced_wasserstein_distance(z.detach().numpy(), y.numpy(), p=2, projections=theta.T.numpy())
    assert float(reg.loss(z, x).detach()) == pytest.approx(ref**2, rel=1e-5)


# ---------------------------------------------------------------------------- Sinkhorn


def _uniform(n):
    return torch.full((n,), 1.0 / n, dtype=torch.float64)


@pytest.mark.parametrize("normalization", ["none", "mean", "max"])
def test_sinkhorn_value_matches_pot_sinkhorn2(normalization):
    g = torch.Generator().manual_seed(5)
    z, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    m = ot.dist(z, y)
    m = {"none": m, "mean": m / m.mean(), "max": m / m.max()}[normalization]
    tol = 1e-8  # the L1 marginal error; POT is given tol / √n, its criterion is an L2 norm
    ref = ot.sinkhorn2(_uniform(6), _uniform(6), m, 0.5, method="sinkhorn_log", numItermax=50,
                       stopThr=tol / math.sqrt(6))
    value = sinkhorn_cost(z, y, 0.5, 50, normalization, tolerance=tol)
    assert float(value) == pytest.approx(float(ref), rel=1e-10)


def test_sinkhorn_gradient_is_pot_envelope_gradient():
    g = torch.Generator().manual_seed(6)
    z0, y = torch.randn(6, 3, generator=g, dtype=torch.float64), torch.randn(6, 3, generator=g, dtype=torch.float64)
    z = z0.clone().requires_grad_(True)
    sinkhorn_cost(z, y, 1.0, 5000, tolerance=1e-12).backward()
    z_ref = z0.clone().requires_grad_(True)
    ot.solve_sample(z_ref, y, reg=1.0, max_iter=5000, grad="envelope").value.backward()
    assert torch.allclose(z.grad, z_ref.grad, rtol=1e-6, atol=1e-9)


def _sphere_batch(n=100, dim=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    z = torch.nn.functional.normalize(torch.randn(n, dim, generator=g) + 0.5, dim=1)
    y = torch.nn.functional.normalize(torch.randn(n, dim, generator=g), dim=1)
    return z, y


@pytest.mark.parametrize("tolerance", [1e-2, 1e-4, 1e-6])
def test_sinkhorn_iterates_until_the_marginal_error_meets_the_tolerance(tolerance):
    z, y = _sphere_batch()
    cost = ot.dist(z, y).double()
    plan, err = sinkhorn_plan(cost, 0.05, 100_000, tolerance)
    rows, cols = plan.sum(1) - 1 / 100, plan.sum(0) - 1 / 100
    assert err == pytest.approx(float(rows.abs().sum() + cols.abs().sum()), rel=1e-9)
    assert err <= tolerance
    assert err > tolerance / 1000  # it stopped near the tolerance, not at machine precision


def test_sinkhorn_that_does_not_converge_says_so():
    """ε = 0.02 on the sphere needs ~1,700 iterations: at a cap of 100 the marginals are
    off by 6·10⁻⁴ of the mass; the regularizer warns once, logs it and reports it."""
    ctx = make_ctx("sphere", dim=128)
    reg = make_reg("sinkhorn", ctx, epsilon=0.02, iterations=100)
    z, _ = _sphere_batch(seed=1)  # not the seed of the regularizer's prior samples
    with pytest.warns(RuntimeWarning, match=r"sinkhorn: marginal error .* > tolerance 0.0001 after 100 iterations"):
        reg.loss(z, z)
    assert reg.logs["marginal_err"] > 1e-4 and reg.logs["unconverged_steps"] == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once per run, not every step
        reg.loss(z, z)
    assert reg.logs["unconverged_steps"] == 2
    (line,) = reg.run_warnings()
    assert line.startswith("sinkhorn did not converge in 2 steps")
    assert "unconverged_steps" in reg.state_dict()  # checkpointed: a resumed run keeps counting

    converged = make_reg("sinkhorn", make_ctx("sphere", dim=128), epsilon=0.02, iterations=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        converged.loss(z, z)
    assert converged.logs["marginal_err"] <= 1e-4 and converged.run_warnings() == []


def test_sinkhorn_does_not_keep_a_graph_through_iterations():
    z = torch.randn(6, 3, generator=torch.Generator().manual_seed(8), requires_grad=True)
    y = torch.randn(6, 3, generator=torch.Generator().manual_seed(9))
    loss = sinkhorn_cost(z, y, 0.1, 100)
    seen, stack = set(), [loss.grad_fn]
    while stack:  # the whole backward graph: the cost and one product with the plan
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        stack.extend(f for f, _ in node.next_functions)
    assert len(seen) < 30


# ---------------------------------------------------------------------------- CWAE


def _phi_asymptotic(s, dim):
    return (1 + 4 * s / (2 * dim - 3)) ** -0.5


def _phi_exact(s, dim):
    return scipy.special.hyp1f1(0.5, dim / 2, -s)


def _cw2_paper(x: np.ndarray, phi) -> float:
    """d²_cw(X, N(0, I)) of Knop et al. (JMLR 2020), Theorem 3, term by term."""
    n, dim = x.shape
    gamma = (4 / (3 * n)) ** 0.4
    pair = sum(phi(np.sum((x[i] - x[j]) ** 2) / (4 * gamma), dim) for i in range(n) for j in range(n))
    single = sum(phi(np.sum(x[i] ** 2) / (2 + 4 * gamma), dim) for i in range(n))
    return (pair / math.sqrt(gamma) + n**2 / math.sqrt(1 + gamma) - 2 * n / math.sqrt(gamma + 0.5) * single) / (
        2 * n**2 * math.sqrt(math.pi)
    )


@pytest.mark.parametrize("log_distance", [True, False])
def test_cwae_matches_paper_formula(log_distance):
    ctx = make_ctx("gaussian", dim=8)
    reg = make_reg("cwae", ctx, log_distance=log_distance)
    x = torch.randn(9, 8, generator=torch.Generator().manual_seed(10), dtype=torch.float64) * 1.3
    cw = 2 * math.sqrt(math.pi) * _cw2_paper(x.numpy(), _phi_asymptotic)
    expected = math.log(cw) if log_distance else cw
    assert float(reg.loss(x, x)) == pytest.approx(expected, rel=1e-10)


def test_cwae_paper_formula_is_the_sliced_smoothed_l2_distance():
    """Check of the numpy transcription of Theorem 3 (with the exact φ_D) against the
    definition: the mean over directions v of the squared L2 distance between the
    γ-smoothed densities of v·X and of N(0, 1), estimated by Monte Carlo over v."""
    n, dim = 9, 6
    x = np.random.default_rng(1).standard_normal((n, dim)) * 1.3
    gamma = (4 / (3 * n)) ** 0.4
    v = np.random.default_rng(2).standard_normal((20000, dim))
    p = x @ (v / np.linalg.norm(v, axis=1, keepdims=True)).T  # n × directions

    def normal_pdf(t, var):
        return np.exp(-(t**2) / (2 * var)) / np.sqrt(2 * np.pi * var)

    # ∫ N(a, s)N(b, t) = N(a − b; 0, s + t) for each pair of mixture components
    per_direction = (
        normal_pdf(p[:, None, :] - p[None, :, :], 2 * gamma).mean((0, 1))
        + normal_pdf(0.0, 2 + 2 * gamma)
        - 2 * normal_pdf(p, 1 + 2 * gamma).mean(0)
    )
    assert _cw2_paper(x, _phi_exact) == pytest.approx(per_direction.mean(), rel=0.02)


def test_cwae_prefers_gaussian_latents():
    g = torch.Generator().manual_seed(12)
    gauss = torch.randn(64, 8, generator=g)
    assert float(cw_normality(gauss)) < float(cw_normality(gauss * 2)) and float(cw_normality(gauss)) < float(cw_normality(gauss + 1))


def test_cwae_rejects_sphere_prior_and_tiny_latents():
    with pytest.raises(ConfigError) as err:
        make_reg("cwae", make_ctx("sphere", dim=4))
    assert err.value.key == "model.prior"
    for dim in (1, 2, 7):
        with pytest.raises(ConfigError) as err:
            make_reg("cwae", make_ctx("gaussian", dim=dim))
        assert err.value.key == "model.latent_dim"
    make_reg("cwae", make_ctx("gaussian", dim=8))


def _cw2_matrix(x: np.ndarray, phi) -> float:
    """:func:`_cw2_paper` vectorised (same formula), for larger n."""
    n, dim = x.shape
    gamma = (4 / (3 * n)) ** 0.4
    d2 = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    single = phi((x**2).sum(1) / (2 + 4 * gamma), dim).sum()
    return (phi(d2 / (4 * gamma), dim).sum() / math.sqrt(gamma) + n**2 / math.sqrt(1 + gamma)
            - 2 * n / math.sqrt(gamma + 0.5) * single) / (2 * n**2 * math.sqrt(math.pi))


def test_cwae_docstring_error_figures():
    """The accuracy table of harness/methods/cwae.py: asymptotic / exact d²_cw, n = 64, 20 draws
    (seeded by D), and the worst relative error of φ_D itself."""
    table = {  # D: (X ~ N(0, I), X ~ N(0, I/4), X ~ N(1, I)), as printed in the docstring
        2: (13.1, 0.73, 1.53), 4: (4.4, 0.88, 1.17), 8: (2.6, 0.95, 1.08),
        20: (1.60, 0.98, 1.03), 64: (1.19, 0.995, 1.009), 128: (1.09, 0.998, 1.005),
    }
    for dim, expected in table.items():
        rng = np.random.default_rng(dim)
        ratios = np.zeros(3)
        for _ in range(20):
            base = rng.standard_normal((64, dim))
            for i, x in enumerate((base, 0.5 * base, base + 1)):
                ratios[i] += _cw2_matrix(x, _phi_asymptotic) / _cw2_matrix(x, _phi_exact) / 20
        assert ratios == pytest.approx(expected, rel=0.01, abs=0.005), dim
    s = np.linspace(0, 200, 20001)
    for dim, worst in {2: 0.31, 8: 0.030, 20: 0.010, 64: 0.0030}.items():
        err = np.abs(_phi_asymptotic(s, dim) / _phi_exact(s, dim) - 1).max()
        assert err == pytest.approx(worst, rel=0.05), dim


# ---------------------------------------------------------------------------- WAE-GAN


def _separable(ctx, n=32):
    """Latents far from the N(0, I) prior: a problem the discriminator can solve."""
    z = torch.randn(n, ctx.latent_dim, generator=torch.Generator().manual_seed(13))
    z[:, 0] += 4.0
    return z


def test_wae_gan_discriminator_learns_and_encoder_term_rises():
    ctx = make_ctx("gaussian", dim=2)
    reg = make_reg("wae_gan", ctx, hidden=[16], lr=1e-2, betas=[0.5, 0.999])
    z = _separable(ctx)
    enc_before = float(reg.loss(z, z))
    d_losses = []
    for step in range(60):
        reg.after_step(z, z, step)
        d_losses.append(reg.logs["disc_loss"])
    assert np.mean(d_losses[-5:]) < 0.3 * np.mean(d_losses[:5])
    assert float(reg.loss(z, z)) > enc_before + 1.0


def test_wae_gan_encoder_loss_leaves_discriminator_grads_alone():
    ctx = make_ctx("gaussian", dim=3)
    reg = make_reg("wae_gan", ctx, hidden=[8, 8])
    z, x = latents(ctx)
    reg.loss(z, x).backward()
    assert all(p.grad is None for p in reg.discriminator.parameters())
    assert ctx.encoder.weight.grad is not None and ctx.encoder.weight.grad.abs().sum() > 0
    reg.after_step(z.detach(), x, 0)
    assert all(p.grad is None for p in reg.discriminator.parameters())


def test_wae_gan_checkpoint_round_trip():
    ctx = make_ctx("gaussian", dim=2, seed=1)
    reg = make_reg("wae_gan", ctx, hidden=[8], lr=1e-2)
    z = _separable(ctx)
    for step in range(3):
        reg.after_step(z, z, step)
    state = copy.deepcopy(reg.checkpoint_state())
    other = make_reg("wae_gan", make_ctx("gaussian", dim=2, seed=2), hidden=[8], lr=1e-2)
    other.load_checkpoint_state(state)
    assert other.optimizer.state_dict()["state"][0]["step"] == 3
    for r in (reg, other):
        r.after_step(z, z, 3)
    for p, q in zip(reg.discriminator.parameters(), other.discriminator.parameters(), strict=True):
        assert torch.equal(p, q)
    a, b = reg.optimizer.state_dict()["state"], other.optimizer.state_dict()["state"]
    assert all(torch.equal(a[k]["exp_avg_sq"], b[k]["exp_avg_sq"]) for k in a)


def test_wae_gan_pz_trick_adds_the_prior_log_density_to_the_logit():
    """``pz_trick``: D(z) = MLP(z) + log N(z; 0, I), in the encoder term and in L_D."""
    plain = make_reg("wae_gan", make_ctx("gaussian", dim=3, seed=4), hidden=[8])
    trick = make_reg("wae_gan", make_ctx("gaussian", dim=3, seed=4), hidden=[8], pz_trick=True)
    for p, q in zip(plain.discriminator.parameters(), trick.discriminator.parameters(), strict=True):
        assert torch.equal(p, q)  # same seed, same initial MLP
    z = _separable(plain.ctx)
    y = torch.randn(32, 3, generator=torch.Generator().manual_seed(3))
    log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z).sum(1, keepdim=True)
    assert torch.allclose(trick.logits(z), plain.logits(z) + log_pz, atol=1e-5)
    expected = torch.nn.functional.softplus(-(plain.logits(z) + log_pz)).mean()
    assert float(trick.loss(z, z)) == pytest.approx(float(expected), rel=1e-6)
    log_py = torch.distributions.Normal(0.0, 1.0).log_prob(y).sum(1, keepdim=True)
    d_loss = (torch.nn.functional.softplus(-(plain.logits(y) + log_py)).mean()
              + torch.nn.functional.softplus(plain.logits(z) + log_pz).mean())
    assert float(trick.discriminator_loss(z, y)) == pytest.approx(float(d_loss), rel=1e-6)
    # latents far in the prior's tail are recognised as "not prior" before any training
    assert float(trick.loss(z, z)) > float(plain.loss(z, z)) + 1.0


def test_wae_gan_pz_trick_needs_the_gaussian_prior(tiny_tree):
    tiny_tree["method"] = {"name": "wae_gan", "pz_trick": True}
    with pytest.raises(ConfigError, match=r"^model.prior: got 'sphere'; allowed: gaussian with method.pz_trick"):
        config_from_dict(tiny_tree)
    tiny_tree["model"]["prior"] = "gaussian"
    assert config_from_dict(tiny_tree).method.params.pz_trick is True


# ---------------------------------------------------------------------------- common


def _cases():
    for name in BASELINES:
        for prior in ("gaussian", "sphere"):
            if not (name == "cwae" and prior == "sphere"):
                yield name, prior


SMALL = {"wae_gan": {"hidden": [8]}}


@pytest.mark.parametrize("name,prior", list(_cases()))
def test_loss_is_scalar_with_gradients_to_encoder(name, prior):
    ctx = make_ctx(prior, dim=8 if name == "cwae" else 3)  # cwae needs D >= 8
    reg = make_reg(name, ctx, **SMALL.get(name, {}))
    z, x = latents(ctx)
    z.retain_grad()
    loss = reg.loss(z, x)
    assert loss.ndim == 0 and torch.isfinite(loss)
    loss.backward()
    assert z.grad is not None and torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0
    assert ctx.encoder.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("name", BASELINES)
def test_same_seed_same_value_other_seed_other_value(name):
    dim = 8 if name == "cwae" else 3  # cwae needs D >= 8

    def value(seed):
        ctx = make_ctx("gaussian", dim=dim, seed=seed)
        reg = make_reg(name, ctx, **SMALL.get(name, {}))
        z, x = latents(make_ctx("gaussian", dim=dim, seed=0))  # same latents for every seed
        return float(reg.loss(z.detach(), x))

    assert value(0) == value(0)
    if name != "cwae":  # cwae draws nothing: it is a closed form in the latents
        assert value(0) != value(1)


BAD = [
    ("mmd", {"kernel": "gauss"}, "method.kernel"),
    ("mmd", {"scales": []}, "method.scales"),
    ("mmd", {"scales": [1.0, -2.0]}, "method.scales"),
    ("swd", {"num_projections": 0}, "method.num_projections"),
    ("sinkhorn", {"epsilon": -0.1}, "method.epsilon"),
    ("sinkhorn", {"epsilon": 0}, "method.epsilon"),
    ("sinkhorn", {"iterations": 0}, "method.iterations"),
    ("sinkhorn", {"cost_normalization": "median"}, "method.cost_normalization"),
    ("wae_gan", {"lr": 0}, "method.lr"),
    ("wae_gan", {"betas": [0.5]}, "method.betas"),
    ("wae_gan", {"hidden": [16, 0]}, "method.hidden"),
    ("cwae", {"log_distance": "yes"}, "method.log_distance"),
    ("swd", {"projections": 10}, "method.projections"),
]

# sections of the run config other than `method`, set to plug-ins this test does not own
OTHER_SECTIONS = {"data": {"name": "synthetic"}, "model": {"arch": "mlp", "prior": "gaussian"}}


@pytest.mark.parametrize("name,params,key", BAD)
def test_config_errors_name_the_key(name, params, key):
    with pytest.raises(ConfigError) as err:
        config_from_dict({**OTHER_SECTIONS, "method": {"name": name, **params}})
    assert err.value.key == key
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", BASELINES)
def test_defaults_are_valid_and_round_trip(name):
    cfg = config_from_dict({**OTHER_SECTIONS, "method": {"name": name, "weight": 2.0}})
    assert isinstance(cfg.method.params, REGULARIZERS.get(name).Config)
    again = config_from_dict({**OTHER_SECTIONS, "method": cfg.method.to_dict()})
    assert again.method == cfg.method
