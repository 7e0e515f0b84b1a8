"""``svae``: the hyperspherical VAE (S-VAE) of Davidson et al. (2018), the paper's Fig. 7 baseline.

The encoder outputs d + 1 raw values per item (:meth:`SVAE.extra_outputs` = 1): the first d
give the mean direction μ(x) = h/‖h‖ on S^{d−1}, the last the concentration
κ(x) = softplus(h_{d+1}) + κ₀ (κ₀ = ``kappa_offset``, Davidson et al.'s "+1", which keeps the
posterior from collapsing to the uniform). The posterior is vMF(μ(x), κ(x)) and the prior the
uniform distribution on S^{d−1} (``model.prior: sphere``). With the trainer's loss
(paper Eq. 5) the objective is

    L = (1/B) Σ_i [ ‖x_i − g(z_i)‖² + λ · KL(vMF(μ(x_i), κ(x_i)) ‖ U(S^{d−1})) ],
    z_i ~ vMF(μ(x_i), κ(x_i)),

the negative ELBO of Davidson et al. with a Gaussian decoder of variance 1/2 when λ = 1 (the
squared error is summed over pixels), and a β-VAE weighting otherwise. The KL is in closed
form (:func:`harness.methods._vmf.kl_to_uniform`); z is drawn by Wood's rejection sampler with
implicit reparameterisation gradients for κ (:mod:`harness.methods._vmf`).

The latent fed to the decoder (:meth:`SVAE.latent`) is a sample while the model is in
training mode and the mean direction μ(x) when it is in eval mode (evaluation, t-SNE,
reconstructions), as in Davidson et al.'s evaluation of the latent space.

``posterior: power_spherical`` replaces the vMF by a **different distribution**, the Power
Spherical PS(μ, κ) of De Cao & Aziz (2020), density ∝ (1 + μᵀz)^κ on S^{d−1}, through the
``power-spherical`` package: its marginal t = μᵀz is 2·Beta((d−1)/2 + κ, (d−1)/2) − 1 (no
rejection, reparameterised by torch's Beta), and its KL to the uniform is
−H(PS) + log|S^{d−1}| in closed form (digamma/lgamma, no Bessel functions). Same κ
parameterisation, same latent map; the package samples from torch's global generator, so the
draw runs under ``torch.random.fork_rng`` seeded from this method's own generator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.errors import require, require_choice
from harness.methods._base import REGULARIZERS, Regularizer, RegularizerContext
from harness.methods._vmf import kl_to_uniform, sample_vmf


POSTERIORS = ["vmf", "power_spherical"]


@dataclass
class SVAEConfig:
    kappa_offset: float = 1.0  # κ = softplus(raw) + κ₀ (Davidson et al. use 1)
    posterior: str = "vmf"  # vmf (the S-VAE) | power_spherical (De Cao & Aziz 2020)

    def check(self, p: str) -> None:
        ok = self.kappa_offset >= 0 and math.isfinite(self.kappa_offset)
        require(ok, f"{p}.kappa_offset", self.kappa_offset, "a finite number >= 0")
        require_choice(self.posterior, f"{p}.posterior", POSTERIORS)
        if self.posterior == "power_spherical":
            require(self.kappa_offset > 0, f"{p}.kappa_offset", self.kappa_offset,
                    "a finite number > 0 for the power_spherical posterior")


def power_spherical_kl(kappa: torch.Tensor, d: int) -> torch.Tensor:
    """KL(PS(·, κ) ‖ U(S^{d−1})) elementwise (the ``power-spherical`` package's closed form)."""
    from power_spherical import HypersphericalUniform, PowerSpherical

    mu = torch.zeros(len(kappa), d, dtype=kappa.dtype, device=kappa.device)
    mu[:, 0] = 1
    uniform = HypersphericalUniform(d, device=kappa.device, dtype=kappa.dtype)
    return torch.distributions.kl_divergence(PowerSpherical(mu, kappa), uniform)


def sample_power_spherical(mu: torch.Tensor, kappa: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One reparameterised draw z ~ PS(μ_i, κ_i) per row; randomness from ``generator`` only."""
    from power_spherical import PowerSpherical

    seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    devices = [mu.device] if mu.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        return PowerSpherical(mu, kappa).rsample()


@REGULARIZERS.register("svae")
class SVAE(Regularizer):
    Config = SVAEConfig

    def __init__(self, config: SVAEConfig, ctx: RegularizerContext):
        super().__init__(config, ctx)
        self._kappa: torch.Tensor | None = None

    @classmethod
    def check_run(cls, cfg) -> None:
        require(cfg.model.prior == "sphere", "model.prior", cfg.model.prior,
                "sphere (the S-VAE's KL is to the uniform distribution on the sphere)")
        require(cfg.model.latent_dim >= 2, "model.latent_dim", cfg.model.latent_dim,
                "an integer >= 2 for svae (a vMF on S^{d-1} needs d >= 2)")

    @classmethod
    def extra_outputs(cls, config: SVAEConfig) -> int:
        return 1  # the concentration κ

    def posterior(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(μ, κ) of vMF(μ(x), κ(x)) from the raw encoder outputs ``h`` (B × (d + 1))."""
        d = self.ctx.latent_dim
        return F.normalize(h[:, :d], dim=-1), F.softplus(h[:, d]) + self.config.kappa_offset

    def latent(self, h: torch.Tensor) -> torch.Tensor:
        mu, kappa = self.posterior(h)
        self._kappa = kappa
        if not self.ctx.encoder.training:
            return mu
        if self.config.posterior == "power_spherical":
            return sample_power_spherical(mu, kappa, self.ctx.generator)
        return sample_vmf(mu, kappa, self.ctx.generator).to(self.ctx.device)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if self._kappa is None:
            raise RuntimeError("svae.loss needs the posterior of this batch: call latent(h) first")
        kappa, self._kappa = self._kappa, None
        self.logs = {"kappa": kappa.detach().mean()}  # a tensor: no device sync per step
        if self.config.posterior == "power_spherical":
            return power_spherical_kl(kappa, self.ctx.latent_dim).mean()
        return kl_to_uniform(kappa, self.ctx.latent_dim).mean()
