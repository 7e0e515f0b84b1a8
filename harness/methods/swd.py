"""SWAE: the sliced Wasserstein distance between the batch latents and prior samples.

Kolouri et al., "Sliced-Wasserstein Autoencoder: an embarrassingly simple generative model"
(ICLR 2019, arXiv 1804.01947), Eq. 13. Convention: the squared sliced 2-Wasserstein distance

    SW₂²(z, y) = (1/L) Σ_l (1/n) Σ_i (sort(z·θ_l)_i − sort(y·θ_l)_i)²,

the mean over L random unit directions θ_l of the squared 1-D W₂ between the projected
empirical measures (equal sizes, so sorting solves each 1-D problem exactly). This is
the square of POT's ``ot.sliced_wasserstein_distance(..., p=2)``, which returns SW₂.
Each step draws n prior samples, then L fresh directions (normalised Gaussian vectors,
i.e. uniform on S^{d−1}), both from the regularizer's own generator.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness.errors import require
from harness.methods._base import REGULARIZERS, Regularizer


@dataclass
class SWDConfig:
    """Number of random projections L per step (SWAE used L = 50 on MNIST)."""

    num_projections: int = 50

    def check(self, p: str) -> None:
        n = self.num_projections
        require(n >= 1, f"{p}.num_projections", n, "an integer >= 1")


def sliced_wasserstein2(z: torch.Tensor, y: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """SW₂² of the module docstring; ``theta`` is L × d with unit rows, z and y are n × d."""
    if z.shape[0] != y.shape[0]:
        raise ValueError(f"swd: needs two samples of equal size, got {z.shape[0]} and {y.shape[0]}")
    pz = torch.sort(z @ theta.T, dim=0).values
    py = torch.sort(y @ theta.T, dim=0).values
    return (pz - py).pow(2).mean()


@REGULARIZERS.register("swd")
class SlicedWasserstein(Regularizer):
    Config = SWDConfig

    def directions(self, n: int) -> torch.Tensor:
        """``n`` random unit directions in R^d from the regularizer's generator."""
        g = self.ctx.generator
        theta = torch.randn(n, self.ctx.latent_dim, generator=g, device=g.device)
        return F.normalize(theta, dim=1)

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = self.sample_prior(z.shape[0]).to(z)
        theta = self.directions(self.config.num_projections).to(z)
        return sliced_wasserstein2(z, y, theta)
