"""Sinkhorn autoencoder: entropic OT between the batch latents and prior samples.

Patrini et al., "Sinkhorn AutoEncoders" (UAI 2020, arXiv 1810.01118), with the Sinkhorn
distance of Cuturi (2013). For latents z_1..z_n and prior samples y_1..y_n with uniform
weights and squared Euclidean cost C_ij = ‖z_i − y_j‖² (optionally divided by a detached
scale, ``cost_normalization``), the entropic plan P_ε is computed by POT's log-domain
Sinkhorn (``ot.sinkhorn(..., method="sinkhorn_log")``) and the loss is the Sinkhorn distance

    L = ⟨P_ε, C(z, y)⟩,

the value ``ot.sinkhorn2`` returns for the same inputs.

Convergence: the iterations run until the marginal error

    err = ‖P 1 − a‖₁ + ‖Pᵀ 1 − b‖₁

(the fraction of the unit mass in the wrong place; after POT's last row update only the
column term is non-zero) is at most ``tolerance``, or until ``iterations`` (the cap). POT
stops on the Euclidean norm of the column error, so it is given ``tolerance / √n`` (since
‖·‖₁ ≤ √n ‖·‖₂). A small ε converges slowly: for n = 100 latents and prior samples on
S^127 (five draws, tolerance 10⁻⁴), ε = 0.1 stops after 10 iterations, ε = 0.05 after
20-40, ε = 0.02 after 140-630 (after 100 iterations its err is 0.8-5·10⁻⁴); with Gaussian
latents and costs of order 2d the default ε = 0.1 does not converge in 100 iterations.
Not converging means a plan whose marginals are off and a wrong gradient, so it is never
silent: every step's err is logged (``reg_marginal_err``: the last step of the epoch;
``reg_unconverged_steps``: steps so far that missed the tolerance), the first such step
warns (``RuntimeWarning``), and the run's status carries a warning
(:meth:`Sinkhorn.run_warnings`).

Gradients (memory bounded): the plan is computed from the detached cost, so no autograd
graph is kept through the iterations, and gradients reach z only through C(z, y):
∂L/∂C = P_ε. By the envelope theorem this is the exact gradient of the entropic OT value
OT_ε(C) = min_P ⟨P, C⟩ + ε·KL(P | ab^T) at the fixed point (what POT's ``grad="envelope"``
sets), not the derivative of ⟨P_ε(C), C⟩ through P_ε. SAE instead unrolls the iterations;
MoCA's paper (Sec. 2) names that unrolling as SAE's cost.

Defaults are assumptions (docs/paper.md: the paper gives none): ε = 0.1 suits
squared distances in [0, 4] on the unit sphere; with the Gaussian prior (distances ~ 2d)
use ``cost_normalization: mean`` or a larger ε. ``tolerance`` = 10⁻⁴ of the mass: well
above float32's floor (about 10⁻⁶ at these sizes), far below the 7% by which a plan cut
off early can miss its marginals.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import torch

from harness.errors import require, require_choice
from harness.methods._base import REGULARIZERS, Regularizer, RegularizerContext

NORMALIZATIONS = ["none", "mean", "max"]


@dataclass
class SinkhornConfig:
    """Entropic strength ε, Sinkhorn iteration cap and tolerance, and the cost's scale."""

    epsilon: float = 0.1
    iterations: int = 100  # the cap on Sinkhorn iterations (POT's numItermax)
    tolerance: float = 1e-4  # stop when the marginal error (L1, fraction of mass) is at most this
    cost_normalization: str = "none"  # none | mean | max: divide C by its detached mean / max

    def check(self, p: str) -> None:
        eps = self.epsilon
        require(eps > 0 and math.isfinite(eps), f"{p}.epsilon", eps, "a finite number > 0")
        require(self.iterations >= 1, f"{p}.iterations", self.iterations, "an integer >= 1")
        require(0 < self.tolerance < 1, f"{p}.tolerance", self.tolerance, "a number in (0, 1)")
        require_choice(self.cost_normalization, f"{p}.cost_normalization", NORMALIZATIONS)


def sinkhorn_plan(
    cost: torch.Tensor, epsilon: float, iterations: int, tolerance: float
) -> tuple[torch.Tensor, float]:
    """The entropic plan for uniform marginals and its L1 marginal error (module docstring)."""
    import ot

    n, m = cost.shape
    a = torch.full((n,), 1.0 / n, dtype=cost.dtype, device=cost.device)
    b = torch.full((m,), 1.0 / m, dtype=cost.dtype, device=cost.device)
    with torch.no_grad():
        plan = ot.sinkhorn(a, b, cost, epsilon, method="sinkhorn_log", numItermax=iterations,
                           stopThr=tolerance / math.sqrt(m), warn=False)
        err = (plan.sum(1) - a).abs().sum() + (plan.sum(0) - b).abs().sum()
    return plan, float(err)


def sinkhorn_cost(
    z: torch.Tensor, y: torch.Tensor, epsilon: float, iterations: int, normalization: str = "none",
    tolerance: float = 1e-4,
) -> torch.Tensor:
    """⟨P_ε, C(z, y)⟩ with P_ε from the detached cost (module docstring)."""
    return _sinkhorn(z, y, epsilon, iterations, normalization, tolerance)[0]


def _sinkhorn(z, y, epsilon, iterations, normalization, tolerance) -> tuple[torch.Tensor, float]:
    import ot
    cost = ot.dist(z, y)  # squared Euclidean
    if normalization != "none":
        scale = cost.detach().mean() if normalization == "mean" else cost.detach().max()
        cost = cost / scale.clamp_min(torch.finfo(cost.dtype).tiny)
    plan, err = sinkhorn_plan(cost.detach(), epsilon, iterations, tolerance)
    return (plan * cost).sum(), err


@REGULARIZERS.register("sinkhorn")
class Sinkhorn(Regularizer):
    Config = SinkhornConfig

    def __init__(self, config: SinkhornConfig, ctx: RegularizerContext):
        super().__init__(config, ctx)
        # checkpointed with the module, so a resumed run reports the same counts
        self.register_buffer("unconverged_steps", torch.zeros((), dtype=torch.int64))
        self.register_buffer("worst_marginal_err", torch.zeros((), dtype=torch.float64))

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        y = self.sample_prior(z.shape[0]).to(z)
        c = self.config
        value, err = _sinkhorn(z, y, c.epsilon, c.iterations, c.cost_normalization, c.tolerance)
        if self.training:
            self._count(err)
        return value

    def _count(self, err: float) -> None:
        c = self.config
        self.logs["marginal_err"] = err
        if err > c.tolerance:
            if int(self.unconverged_steps) == 0:
                warnings.warn(
                    f"sinkhorn: marginal error {err:.2g} > tolerance {c.tolerance:g} after {c.iterations} "
                    f"iterations (epsilon {c.epsilon:g}); the plan and its gradient are inaccurate: raise "
                    "method.iterations or method.epsilon", RuntimeWarning, stacklevel=3)
            self.unconverged_steps += 1
            self.worst_marginal_err.fill_(max(float(self.worst_marginal_err), err))
        self.logs["unconverged_steps"] = float(self.unconverged_steps)

    def run_warnings(self) -> list[str]:
        n = int(self.unconverged_steps)
        if n == 0:
            return []
        c = self.config
        return [f"sinkhorn did not converge in {n} steps (marginal error up to {float(self.worst_marginal_err):.2g} "
                f"> tolerance {c.tolerance:g} after {c.iterations} iterations, epsilon {c.epsilon:g})"]
