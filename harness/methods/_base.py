"""The plug-in interface between the common trainer and a latent regularizer.

The trainer computes, per batch, ``z = regularizer.latent(encoder(x))`` (by default the
prior's projection, ``prior.project(encoder(x))``) and the loss
``reconstruction + weight * regularizer.loss(z, x)`` (paper Eq. 5 with λ = weight), steps
its optimiser, then calls ``regularizer.after_step(z.detach(), x)``. A method that needs
more than a point latent (the S-VAE's concentration κ) asks for extra encoder outputs with
:meth:`Regularizer.extra_outputs` and owns how the decoder's latent is drawn from them in
:meth:`Regularizer.latent`; the model keeps that map (``model.latent_map``) so evaluators
encode exactly as the method does. A regularizer may own
state (MoCA's momentum encoder and queue), parameters and optimisers of its own (WAE-GAN's
discriminator), and a random generator; all of it is saved in checkpoints through
:meth:`Regularizer.checkpoint_state`.
"""

from __future__ import annotations

from abc import ABCMeta, abstractmethod
from dataclasses import dataclass
from contextlib import nullcontext
from typing import Callable, ContextManager

import torch
from torch import nn

from harness.priors import Prior
from harness.registry import Registry

REGULARIZERS: Registry[type["Regularizer"]] = Registry("method", package="harness.methods")


@dataclass
class NoParams:
    """Hyper-parameters of a regularizer that has none besides λ."""

    def check(self, prefix: str) -> None:
        pass


@dataclass
class RegularizerContext:
    """What a regularizer may know about the run it belongs to.

    ``encoder`` is the live encoder (not to be registered as a submodule: the trainer owns
    its parameters); ``project`` maps raw encoder outputs to latents (the prior's
    projection); ``generator`` is this regularizer's own random stream, derived from the
    master seed; ``total_steps`` is T, the total number of optimiser steps of the run.
    ``autocast()`` is the trainer's mixed-precision context (bf16 on CUDA by default), for
    networks the regularizer runs itself; ``gather(t)`` concatenates ``t`` over the processes
    of a multi-GPU run (each sees only its slice of the global batch).
    """

    encoder: nn.Module
    project: Callable[[torch.Tensor], torch.Tensor]
    prior: Prior
    latent_dim: int
    total_steps: int
    generator: torch.Generator
    device: torch.device
    # the trainer's mixed-precision context for network forward passes (a no-op in fp32)
    autocast: Callable[[], ContextManager] = nullcontext
    # concatenation over the processes of a DDP run of a per-rank tensor (identity in one process)
    gather: Callable[[torch.Tensor], torch.Tensor] = lambda t: t


class Regularizer(nn.Module, metaclass=ABCMeta):
    """Base class of latent regularizers. Subclasses set ``Config`` and implement ``loss``."""

    Config: type = NoParams

    def __init__(self, config, ctx: RegularizerContext):
        super().__init__()
        self.config = config
        # stored in a tuple so nn.Module does not register the live encoder as a submodule
        self._ctx = (ctx,)
        self.logs: dict[str, float] = {}  # extra scalars of the last step, logged per epoch

    @classmethod
    def check_run(cls, cfg) -> None:
        """Validate the whole run config for this method (e.g. the prior it needs).

        Called during config validation, before anything runs; raise
        ``harness.errors.ConfigError`` naming the offending key.
        """

    @classmethod
    def extra_outputs(cls, config) -> int:
        """Raw encoder outputs the method needs beyond ``latent_dim`` (0: a point latent)."""
        return 0

    def latent(self, h: torch.Tensor) -> torch.Tensor:
        """The decoder's latent from raw encoder outputs ``h`` (``latent_dim`` + extra columns).

        Called on each training batch right before :meth:`loss`, and by evaluators with the
        model in eval mode; a stochastic method samples only while ``ctx.encoder.training``
        (its generator is ``ctx.generator``) and is deterministic in eval mode.
        """
        return self.ctx.project(h)

    @property
    def ctx(self) -> RegularizerContext:
        return self._ctx[0]

    @abstractmethod
    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """The regularizer's value on a batch of latents ``z`` (computed from inputs ``x``)."""

    def after_step(self, z: torch.Tensor, x: torch.Tensor, step: int) -> None:
        """Called after each optimiser step of the autoencoder (``step`` counts from 0)."""

    def run_warnings(self) -> list[str]:
        """One-line warnings about the run so far (e.g. a solver that did not converge);
        the trainer records them in status.json and runs.csv. Default: none."""
        return []

    def optimizers(self) -> list[torch.optim.Optimizer]:
        """Optimisers the regularizer owns (their state is checkpointed)."""
        return []

    def checkpoint_state(self) -> dict:
        return {
            "module": self.state_dict(),
            "generator": self.ctx.generator.get_state(),
            "optimizers": [o.state_dict() for o in self.optimizers()],
        }

    def load_checkpoint_state(self, state: dict) -> None:
        self.load_state_dict(state["module"])
        self.ctx.generator.set_state(state["generator"])
        for opt, s in zip(self.optimizers(), state["optimizers"], strict=True):
            opt.load_state_dict(s)

    def sample_prior(self, n: int) -> torch.Tensor:
        """``n`` prior samples from this regularizer's own random stream."""
        g = self.ctx.generator
        return self.ctx.prior.sample(n, generator=g, device=g.device).to(self.ctx.device)
