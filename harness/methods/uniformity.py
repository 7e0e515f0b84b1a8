"""``uniformity``: Wang & Isola's (2020) uniformity loss, the entropy term of the contrastive loss alone.

For latents z_1..z_B on the unit sphere (gradients flow) and, optionally, a queue u_1..u_K of
the latents of the K most recent training inputs (no gradients), the loss is

    L_uniform = log( (1/P) [ Σ_{i<j} e^{−t‖z_i − z_j‖²} + Σ_{i,k} e^{−t‖z_i − u_k‖²} ] ),

P = B(B−1)/2 + B·K pairs, with ‖a − b‖² = 2 − 2aᵀb on the sphere (Wang & Isola, "Understanding
contrastive representation learning through alignment and uniformity on the hypersphere",
ICML 2020, Eq. 5 with t = 2). It is, up to constants, the log of a Gaussian-kernel density
estimate of the latents at themselves, and MoCA's InfoNCE (Eq. 6) tends to it as the
number of negatives grows (Wang & Isola, Theorem 1): the entropy term of MoCA without the
positive pair, the momentum encoder or (with ``queue_size: 0``) the queue. Used as an
ablation of MoCA's components (sweeps/moca_components.yaml).

Choices: the queue starts with uniform-sphere samples, as MoCA's does, and is a ring buffer
of detached latents written after each optimiser step; the method requires ``model.prior:
sphere`` (on R^d the loss would push latents to infinity).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from harness.errors import require
from harness.methods._base import REGULARIZERS, Regularizer, RegularizerContext
from harness.methods.moca import enqueue_ring


@dataclass
class UniformityConfig:
    t: float = 2.0  # kernel scale (Wang & Isola: t = 2)
    queue_size: int = 0  # K past latents as extra points (0: in-batch pairs only)

    def check(self, p: str) -> None:
        require(self.t > 0 and math.isfinite(self.t), f"{p}.t", self.t, "a number > 0")
        require(self.queue_size >= 0, f"{p}.queue_size", self.queue_size, "an integer >= 0")


def uniformity_loss(z: torch.Tensor, t: float, queue: torch.Tensor | None = None) -> torch.Tensor:
    """log of the mean of e^{−t‖a − b‖²} over the pairs i < j of ``z`` and (i, k) with ``queue``."""
    b = z.shape[0]
    i, j = torch.triu_indices(b, b, offset=1, device=z.device)
    logits = [(-2 * t) * (1 - (z[i] * z[j]).sum(1))]
    if queue is not None and len(queue):
        logits.append(((-2 * t) * (1 - z @ queue.t())).flatten())
    logits = torch.cat(logits)
    return torch.logsumexp(logits, 0) - math.log(logits.numel())


@REGULARIZERS.register("uniformity")
class Uniformity(Regularizer):
    Config = UniformityConfig

    def __init__(self, config: UniformityConfig, ctx: RegularizerContext):
        super().__init__(config, ctx)
        if config.queue_size:
            self.register_buffer("queue", self.sample_prior(config.queue_size))
            self.register_buffer("queue_ptr", torch.zeros((), dtype=torch.long, device=ctx.device))
        else:
            self.queue = None

    @classmethod
    def check_run(cls, cfg) -> None:
        require(cfg.model.prior == "sphere", "model.prior", cfg.model.prior,
                "sphere (uniformity is a loss on the unit sphere)")
        require(cfg.train.batch_size >= 2 or cfg.method.params.queue_size >= 1, "train.batch_size",
                cfg.train.batch_size, "an integer >= 2 for uniformity without a queue (it needs pairs)")

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return uniformity_loss(z, self.config.t, self.queue)

    def after_step(self, z: torch.Tensor, x: torch.Tensor, step: int) -> None:
        if self.queue is not None:
            enqueue_ring(self.queue, self.queue_ptr, z)
