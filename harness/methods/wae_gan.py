"""WAE-GAN: an adversarial latent penalty with a discriminator owned by the regularizer.

Tolstikhin et al., "Wasserstein Auto-Encoders" (ICLR 2018, arXiv 1711.01558), Algorithm 1,
as in their reference code (``gan_penalty`` of github.com/tolstikhin/wae):

* discriminator D: an MLP z → logit, ReLU hidden layers (the paper: 4 × 512 on MNIST and
  CelebA), trained by its own Adam (the paper: lr 5e-4, β₁ = 0.5) to label prior samples 1
  and latents 0: L_D = −log σ(D(y)) − log σ(−D(z)), means over the batch;
* encoder term, ``loss(z, x)``: the non-saturating form of the reference code
  (``loss_Qz_trick``), −mean log σ(D(z)), i.e. the encoder tries to make D label z as prior.

``pz_trick`` (off by default; the reference code's ``gan_p_trick`` option, which it uses
for CelebA): the optimal discriminator of the Jensen-Shannon game is
D*(z) = log p_z(z) − log q_z(z), and p_z is known in closed form, so the logit becomes

    D(z) = MLP(z) + log p_z(z),   log p_z(z) = −‖z‖²/2 − (d/2)·log 2π   for N(0, I_d),

and the network only has to learn −log q_z (Mescheder et al.'s "Adversarial Variational
Bayes" uses the same idea). Both the encoder term and L_D see the shifted logit. The
reference code subtracts ½·log 2π instead of (d/2)·log 2π; a constant in the logit is
absorbed by the last layer's bias. Only the Gaussian prior has a non-constant log density
(the uniform sphere's is constant), so the option requires ``model.prior: gaussian``.

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

from harness.errors import require
from harness.methods._base import REGULARIZERS, Regularizer, RegularizerContext


@dataclass
class WAEGANConfig:
    """Discriminator widths and its Adam optimiser (defaults: the WAE paper's MNIST setup)."""

    hidden: list[int] = field(default_factory=lambda: [512, 512, 512, 512])
    lr: float = 5e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    pz_trick: bool = False  # add log p_z(z) to the discriminator's logit (the WAE code's gan_p_trick)

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

    @classmethod
    def check_run(cls, cfg) -> None:
        """Validated with the config, before any run starts."""
        if cfg.method.params.pz_trick:
            require(cfg.model.prior == "gaussian", "model.prior", cfg.model.prior,
                    "gaussian with method.pz_trick (log p_z is constant on the sphere)")

    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.optimizer]

    def logits(self, z: torch.Tensor, params: dict | None = None) -> torch.Tensor:
        """D(z): the MLP's output, plus log p_z(z) with ``pz_trick``."""
        out = self.discriminator(z) if params is None else functional_call(self.discriminator, params, (z,))
        if self.config.pz_trick:
            d = z.shape[1]
            log_pz = -0.5 * z.pow(2).sum(1, keepdim=True) - 0.5 * d * math.log(2 * math.pi)
            out = out + log_pz
        return out

    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Non-saturating encoder term −mean log σ(D(z)); no gradient reaches D."""
        frozen = {k: v.detach() for k, v in self.discriminator.named_parameters()}
        return F.softplus(-self.logits(z, frozen)).mean()

    def discriminator_loss(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """L_D = mean −log σ(D(y)) + mean −log σ(−D(z)): prior samples 1, latents 0."""
        return F.softplus(-self.logits(y)).mean() + F.softplus(self.logits(z)).mean()

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
