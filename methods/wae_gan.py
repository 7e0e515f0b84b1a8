"""WAE-GAN: an adversarial latent penalty with a discriminator owned by the regularizer.

Tolstikhin et al., "Wasserstein Auto-Encoders" (ICLR 2018, arXiv 1711.01558), Algorithm 1,
as in their reference code (``gan_penalty`` of github.com/tolstikhin/wae):

* discriminator D: an MLP z → logit, ReLU hidden layers (the paper: 4 × 512 on MNIST and
  CelebA), trained by its own Adam (the paper: lr 5e-4, β₁ = 0.5) to label prior samples 1
  and latents 0: L_D = −log σ(D(y)) − log σ(−D(z)), means over the batch;
* encoder term, ``loss(z, x)``: the non-saturating form of the reference code
  (``loss_Qz_trick``), −mean log σ(D(z)), i.e. the encoder tries to make D label z as prior.

The discriminator is not part of the autoencoder: ``loss`` evaluates D with detached
parameters, so the autoencoder's backward pass leaves D's gradients untouched, and D is
stepped only in ``after_step`` (one step per autoencoder step, on fresh prior samples
against the detached z). The reference code scales L_D by λ; with Adam that only changes
the effective ε, so it is not done here. The parameters are initialised like
``nn.Linear`` (U(±1/√fan_in)) but from the regularizer's own generator, so a run's numbers
depend on its master seed only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from harness.config import require
from methods._base import REGULARIZERS, Regularizer, RegularizerContext


@dataclass
class WAEGANConfig:
    """Discriminator widths and its Adam optimiser (defaults: the WAE paper's MNIST setup)."""

    hidden: list[int] = field(default_factory=lambda: [512, 512, 512, 512])
    lr: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])

    def check(self, p: str) -> None:
        ok = all(w >= 1 for w in self.hidden)
        require(ok, f"{p}.hidden", self.hidden, "a list of integers >= 1 (empty: logistic regression)")
        require(self.lr > 0 and math.isfinite(self.lr), f"{p}.lr", self.lr, "a finite number > 0")
        ok = len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas)
        require(ok, f"{p}.betas", self.betas, "two numbers in [0, 1)")


def build_discriminator(dim: int, hidden: list[int], generator: torch.Generator) -> nn.Sequential:
    """MLP dim → hidden… → 1 with ReLU, initialised U(±1/√fan_in) from ``generator``."""
    widths = [dim, *hidden, 1]
    layers: list[nn.Module] = []
    for i, (w_in, w_out) in enumerate(zip(widths[:-1], widths[1:])):
        lin = nn.Linear(w_in, w_out, device=generator.device)
        bound = 1.0 / math.sqrt(w_in)
        with torch.no_grad():
            nn.init.uniform_(lin.weight, -bound, bound, generator=generator)
            nn.init.uniform_(lin.bias, -bound, bound, generator=generator)
        layers.append(lin)
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@REGULARIZERS.register("wae_gan")
class WAEGAN(Regularizer):
    Config = WAEGANConfig

    def __init__(self, config: WAEGANConfig, ctx: RegularizerContext):
        super().__init__(config, ctx)
        disc = build_discriminator(ctx.latent_dim, config.hidden, ctx.generator)
        self.discriminator = disc.to(ctx.device)
        self.optimizer = torch.optim.Adam(disc.parameters(), lr=config.lr, betas=tuple(config.betas))

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer]

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Non-saturating encoder term −mean log σ(D(z)); no gradient reaches D."""
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        logits = functional_call(self.discriminator, frozen, (z,))
        return F.softplus(-logits).mean()

    def discriminator_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_D = mean −log σ(D(y)) + mean −log σ(−D(z)): prior samples 1, latents 0."""
        return F.softplus(-self.discriminator(y)).mean() + F.softplus(self.discriminator(z)).mean()

    def after_step(self, z: torch.Tensor, x: torch.Tensor, step: int) -> None:
        """One Adam step of D on n fresh prior samples against the detached latents."""
        z = z.detach()
        y = self.sample_prior(z.shape[0]).to(z)
        self.optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            d_loss = self.discriminator_loss(z, y)
            d_loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.logs["disc_loss"] = float(d_loss.detach())
