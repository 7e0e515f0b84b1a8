"""The von Mises–Fisher distribution on the unit sphere S^{d−1}, for the ``svae`` regularizer.

vMF(μ, κ), with mean direction μ (‖μ‖ = 1) and concentration κ > 0, has the density

    q(z | μ, κ) = C_d(κ) exp(κ μᵀz),   C_d(κ) = κ^{d/2−1} / ((2π)^{d/2} I_{d/2−1}(κ))

with respect to the surface measure of S^{d−1} (I_v: modified Bessel function of the first
kind). Its mean is A_d(κ) μ with the mean resultant length A_d(κ) = I_{d/2}(κ) / I_{d/2−1}(κ).
The KL divergence to the uniform distribution on S^{d−1} (Davidson et al. 2018, Eq. 14) is

    KL(vMF(μ, κ) ‖ U(S^{d−1})) = κ A_d(κ) + log C_d(κ) + log |S^{d−1}|,
    |S^{d−1}| = 2 π^{d/2} / Γ(d/2),

independent of μ and 0 at κ = 0. Bessel functions come from scipy's exponentially scaled
``ive`` in float64 (log I_v(κ) = log ive(v, κ) + κ), differentiated with
d/dκ log I_v(κ) = I_{v+1}(κ)/I_v(κ) + v/κ.

Sampling (:func:`sample_vmf`) follows Wood (1994) as in Davidson et al. (2018, Algorithm 1):
the component ω = μᵀz is drawn by rejection, z = ω μ + √(1−ω²) v with v uniform on the
tangent sphere (a Householder reflection maps e₁ to μ). Gradients reach μ by ordinary
reparameterisation. For κ they use **implicit reparameterisation** (Figurnov et al. 2018)
instead of Davidson et al.'s score-function correction term (which needs the value of the
downstream loss and so cannot live inside the latent map): with F(ω; κ) the CDF of the
marginal density p(ω; κ) ∝ exp(κω)(1−ω²)^{(d−3)/2} on [−1, 1],

    dω/dκ = −∂_κ F(ω; κ) / p(ω; κ) = ∫_ω^1 (t − A_d(κ)) e^{κ(t−ω)} ((1−t²)/(1−ω²))^{(d−3)/2} dt,

which is exact (the normaliser cancels; ∂_κ log p(t; κ) = t − A_d(κ)). The integral is
computed by Gauss–Legendre quadrature after the substitution t = 1 − (1−ω)s², which makes
the integrand smooth for every d ≥ 2. All sampling randomness comes from the generator given.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)
_S = torch.from_numpy((_NODES + 1) / 2)  # Gauss–Legendre on [0, 1]
_W = torch.from_numpy(_WEIGHTS / 2)


def _log_iv_and_ratio(v: float, k: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """log I_v(k) and I_{v+1}(k)/I_v(k) in float64; the small-k series where ive underflows."""
    import scipy.special  # here, not at import: it costs a sweep's start-up 0.3 s (issue 18)

    with np.errstate(divide="ignore", invalid="ignore"):
        iv, iv1 = scipy.special.ive(v, k), scipy.special.ive(v + 1, k)
        log_iv, ratio = np.log(iv) + k, iv1 / iv
    bad = ~(np.isfinite(log_iv) & (iv > 0))
    if bad.any():  # I_v(k) ≈ (k/2)^v / Γ(v+1) for k² ≪ v
        kb = k[bad]
        log_iv[bad] = v * np.log(kb / 2) - scipy.special.gammaln(v + 1)
        ratio[bad] = kb / (2 * (v + 1))
    return log_iv, ratio


class LogBesselI(torch.autograd.Function):
    """log I_v(κ) elementwise for a fixed order v ≥ 0, differentiable in κ > 0 (float64 inside)."""

    @staticmethod
    def forward(ctx, kappa: torch.Tensor, v: float) -> torch.Tensor:
        k = kappa.detach().double().cpu().numpy()
        log_iv, ratio = _log_iv_and_ratio(float(v), k)
        ctx.v = float(v)
        ctx.save_for_backward(kappa, torch.from_numpy(ratio).to(kappa))
        return torch.from_numpy(log_iv).to(kappa)

    @staticmethod
    def backward(ctx, grad):
        kappa, ratio = ctx.saved_tensors
        return grad * (ratio + ctx.v / kappa), None


def log_bessel_iv(v: float, kappa: torch.Tensor) -> torch.Tensor:
    return LogBesselI.apply(kappa, v)


def mean_resultant_length(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """A_d(κ) = I_{d/2}(κ) / I_{d/2−1}(κ) = E‖μᵀz‖ for z ~ vMF(μ, κ) on S^{d−1} (differentiable)."""
    k = kappa.double()
    return torch.exp(log_bessel_iv(d / 2, k) - log_bessel_iv(d / 2 - 1, k)).to(kappa.dtype)


def log_sphere_area(d: int) -> float:
    """log |S^{d−1}| = log(2 π^{d/2} / Γ(d/2))."""
    return math.log(2.0) + d / 2 * math.log(math.pi) - math.lgamma(d / 2)


def kl_to_uniform(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """KL(vMF(·, κ) ‖ U(S^{d−1})) elementwise over ``kappa`` (the module docstring's formula)."""
    k = kappa.double()
    log_i = log_bessel_iv(d / 2 - 1, k)
    a = torch.exp(log_bessel_iv(d / 2, k) - log_i)
    log_c = (d / 2 - 1) * torch.log(k) - d / 2 * math.log(2 * math.pi) - log_i
    return (k * a + log_c + log_sphere_area(d)).to(kappa.dtype)


def domega_dkappa(omega: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
    """The implicit reparameterisation gradient dω/dκ of the vMF marginal (float64).

    ∫_{−1}^{1} (t − A) p(t) dt = 0, so the integral over [ω, 1] equals minus the one over
    [−1, ω]; the shorter side of A is used (no cancellation, no overflow). Substituting
    t = 1 − (1−ω)s² (upper) or t = −1 + (1+ω)s² (lower) gives, with α = (d−3)/2,
        upper:  2(1−ω) ∫_0^1 (t − A) e^{κ(1−ω)(1−s²)} s^{d−2} ((1+t)/(1+ω))^α ds,
        lower: −2(1+ω) ∫_0^1 (t − A) e^{−κ(1+ω)(1−s²)} s^{d−2} ((1−t)/(1−ω))^α ds.
    """
    omega, kappa = omega.double(), kappa.double()
    a = mean_resultant_length(kappa, d).unsqueeze(-1)
    s, w = _S.to(omega.device), _W.to(omega.device)
    om, ka = omega.unsqueeze(-1), kappa.unsqueeze(-1)
    alpha = (d - 3) / 2
    log_s = (d - 2) * torch.log(s)
    up_len, low_len = (1 - om).clamp_min(0), (1 + om).clamp_min(0)
    t_up = 1 - up_len * s * s
    t_low = -1 + low_len * s * s
    log_up = ka * up_len * (1 - s * s) + log_s + alpha * torch.log((1 + t_up) / low_len)
    log_low = -ka * low_len * (1 - s * s) + log_s + alpha * torch.log((1 - t_low) / up_len)
    upper = 2 * up_len.squeeze(-1) * ((t_up - a) * torch.exp(log_up) * w).sum(-1)
    lower = -2 * low_len.squeeze(-1) * ((t_low - a) * torch.exp(log_low) * w).sum(-1)
    return torch.where(omega >= a.squeeze(-1), upper, lower)


class _ImplicitOmega(torch.autograd.Function):
    """Identity in ω (a sample), with dω/dκ from :func:`domega_dkappa` in the backward pass."""

    @staticmethod
    def forward(ctx, omega: torch.Tensor, kappa: torch.Tensor, d: int) -> torch.Tensor:
        ctx.d = d
        ctx.save_for_backward(omega, kappa)
        return omega.clone()

    @staticmethod
    def backward(ctx, grad):
        omega, kappa = ctx.saved_tensors
        return None, grad * domega_dkappa(omega, kappa, ctx.d).to(grad.dtype), None


@torch.no_grad()
def sample_omega(kappa: torch.Tensor, d: int, generator: torch.Generator) -> torch.Tensor:
    """ω = μᵀz for z ~ vMF(μ, κ) on S^{d−1}: Wood's (1994) rejection sampler, float64.

    The Beta((d−1)/2, (d−1)/2) proposal is drawn as (1 + g₁/‖g‖)/2 with g ~ N(0, I_d) (the
    first coordinate of a uniform point on S^{d−1}), so ``generator`` is the only source of
    randomness. b is written as (d−1)/(2κ + √(4κ² + (d−1)²)) to avoid cancellation at large κ.
    """
    gdev = generator.device
    k = kappa.detach().double().to(gdev)
    m1 = d - 1.0
    root = torch.sqrt(4 * k * k + m1 * m1)
    b = m1 / (2 * k + root)
    a = (m1 + 2 * k + root) / 4
    c = 4 * a * b / (1 + b) - m1 * math.log(m1)
    omega = torch.empty_like(k)
    todo = torch.arange(len(k), device=gdev)
    while len(todo):
        g = torch.randn(len(todo), d, generator=generator, device=gdev, dtype=torch.float64)
        eps = (1 + g[:, 0] / g.norm(dim=1)) / 2
        u = torch.rand(len(todo), generator=generator, device=gdev, dtype=torch.float64)
        bt = b[todo]
        denom = 1 - (1 - bt) * eps
        w = (1 - (1 + bt) * eps) / denom
        t = 2 * a[todo] * bt / denom
        accept = m1 * torch.log(t) - t + c[todo] >= torch.log(u)
        omega[todo[accept]] = w[accept]
        todo = todo[~accept]
    return omega.to(kappa.device)


def sample_vmf(mu: torch.Tensor, kappa: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One reparameterised draw z ~ vMF(μ_i, κ_i) per row (``mu``: B×d unit rows, ``kappa``: B).

    Gradients flow to ``mu`` (Householder reflection e₁ ↦ μ) and to ``kappa`` (implicit
    reparameterisation of ω, see the module docstring).
    """
    n, d = mu.shape
    omega = sample_omega(kappa, d, generator)
    omega = _ImplicitOmega.apply(omega, kappa.double(), d).to(mu.dtype)
    v = torch.randn(n, d - 1, generator=generator, device=generator.device, dtype=mu.dtype)
    v = F.normalize(v, dim=1).to(mu.device)  # uniform on the tangent sphere S^{d−2}
    r = torch.sqrt(((1 - omega) * (1 + omega)).clamp_min(0))
    x = torch.cat([omega.unsqueeze(1), r.unsqueeze(1) * v], dim=1)  # vMF(e₁, κ)
    e1 = torch.zeros_like(mu)
    e1[:, 0] = 1
    u = e1 - mu
    u = u / (u.norm(dim=1, keepdim=True) + 1e-12)
    return x - 2 * (x * u).sum(1, keepdim=True) * u  # Householder: e₁ ↦ μ
