"""Sinkhorn autoencoder: entropic OT between the batch latents and prior samples.

Patrini et al., "Sinkhorn AutoEncoders" (UAI 2020, arXiv 1810.01118), with the Sinkhorn
distance of Cuturi (2013). For latents z_1..z_n and prior samples y_1..y_n with uniform
weights and squared Euclidean cost C_ij = ‖z_i − y_j‖² (optionally divided by a detached
scale, ``cost_normalization``), the entropic plan P_ε is computed by POT's log-domain
Sinkhorn (``ot.sinkhorn(..., method="sinkhorn_log")``, at most ``iterations`` iterations)
and the loss is the Sinkhorn distance

    L = ⟨P_ε, C(z, y)⟩,

the value ``ot.sinkhorn2`` returns for the same inputs.

Gradients (memory bounded): the plan is computed from the detached cost, so no autograd
graph is kept through the iterations, and gradients reach z only through C(z, y):
∂L/∂C = P_ε. By the envelope theorem this is the exact gradient of the entropic OT value
OT_ε(C) = min_P ⟨P, C⟩ + ε·KL(P | ab^T) at the fixed point (what POT's ``grad="envelope"``
sets), not the derivative of ⟨P_ε(C), C⟩ through P_ε. SAE instead unrolls the iterations;
MoCA's paper (Sec. 2) names that unrolling as SAE's cost.

Defaults are assumptions (docs/paper.md: the paper gives none): ε = 0.1 suits
squared distances in [0, 4] on the unit sphere; with the Gaussian prior (distances ~ 2d)
use ``cost_normalization: mean`` or a larger ε.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import ot
import torch

from harness.config import require, require_choice
from methods._base import REGULARIZERS, Regularizer

NORMALIZATIONS = ["none", "mean", "max"]


@dataclass
class SinkhornConfig:
    """Entropic strength ε, Sinkhorn iteration cap, and the cost's (detached) scale."""

    epsilon: float = 0.1
    iterations: int = 100  # numItermax of POT's Sinkhorn
    cost_normalization: str = "none"  # none | mean | max: divide C by its detached mean / max

    def check(self, p: str) -> None:
        eps = self.epsilon
        require(eps > 0 and math.isfinite(eps), f"{p}.epsilon", eps, "a finite number > 0")
        require(self.iterations >= 1, f"{p}.iterations", self.iterations, "an integer >= 1")
        require_choice(self.cost_normalization, f"{p}.cost_normalization", NORMALIZATIONS)


def sinkhorn_cost(
    z: torch.Tensor, y: torch.Tensor, epsilon: float, iterations: int, normalization: str = "none"
) -> torch.Tensor:
    """⟨P_ε, C(z, y)⟩ with P_ε from the detached cost (module docstring)."""
    cost = ot.dist(z, y)  # squared Euclidean
    if normalization != "none":
        scale = cost.detach().mean() if normalization == "mean" else cost.detach().max()
        cost = cost / scale.clamp_min(torch.finfo(cost.dtype).tiny)
    a = torch.full((z.shape[0],), 1.0 / z.shape[0], dtype=z.dtype, device=z.device)
    b = torch.full((y.shape[0],), 1.0 / y.shape[0], dtype=z.dtype, device=z.device)
    with torch.no_grad():
        plan = ot.sinkhorn(
            a, b, cost.detach(), epsilon, method="sinkhorn_log", numItermax=iterations, warn=False
        )
    return (plan * cost).sum()


@REGULARIZERS.register("sinkhorn")
class Sinkhorn(Regularizer):
    Config = SinkhornConfig

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = self.sample_prior(z.shape[0]).to(z)
        c = self.config
        return sinkhorn_cost(z, y, c.epsilon, c.iterations, c.cost_normalization)
