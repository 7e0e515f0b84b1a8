"""Latent priors. The prior, not the regularizer, owns sampling and the latent geometry.

* ``sphere``: uniform on the unit sphere S^{d-1} (the MoCA prior, docs/paper.md "The method").
  Encoder outputs are normalised to unit length; samples are normalised Gaussian draws,
  z = ε/‖ε‖ with ε ~ N(0, I_d), which is exactly uniform on the sphere.
* ``gaussian``: the standard Gaussian N(0, I_d) of the original WAE; encoder outputs are
  used as they are.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F

from harness.registry import Registry

PRIORS: Registry[type["Prior"]] = Registry("prior")


class Prior(ABC):
    """A distribution over R^d with a projection of encoder outputs onto its support."""

    name: str = ""
    spherical: bool = False
    # a prior with settings of its own sets ``Config``, a dataclass whose fields become keys of
    # ``model:`` (harness/plugin_settings.py); requirements on the rest of the run go in check_run
    Config: type | None = None

    @classmethod
    def check_run(cls, cfg) -> None:
        """Requirements on the rest of the run config, checked at validation (none by default)."""

    def __init__(self, dim: int):
        self.dim = dim

    def project(self, h: torch.Tensor) -> torch.Tensor:
        """Map raw encoder outputs to latents on the prior's support."""
        return h

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
        """``n`` independent draws, using only ``generator`` for randomness."""

    def interpolate(self, z0: torch.Tensor, z1: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """Latent interpolation; ``t`` broadcasts against the leading dimension."""
        return (1 - t) * z0 + t * z1


@PRIORS.register("sphere")
class UniformSphere(Prior):
    name = "sphere"
    spherical = True

    def project(self, h: torch.Tensor) -> torch.Tensor:
        return F.normalize(h, dim=-1)

    def sample(self, n, generator=None, device=None):
        eps = torch.randn(n, self.dim, generator=generator, device=device or "cpu")
        return F.normalize(eps, dim=-1)

    def interpolate(self, z0, z1, t):
        """Linear interpolation renormalised to the sphere (docs/paper.md)."""
        return F.normalize((1 - t) * z0 + t * z1, dim=-1)


@PRIORS.register("gaussian")
class StandardGaussian(Prior):
    name = "gaussian"

    def sample(self, n, generator=None, device=None):
        return torch.randn(n, self.dim, generator=generator, device=device or "cpu")


def build_prior(name: str, dim: int) -> Prior:
    return PRIORS.get(name)(dim)
