"""``none``: no latent regularizer, a plain (deterministic) autoencoder.

The baseline and control of every comparison: the loss is the reconstruction term alone,
whatever λ says.
"""

from __future__ import annotations

import torch

from harness.methods._base import REGULARIZERS, Regularizer


@REGULARIZERS.register("none")
class NoRegularizer(Regularizer):
    def loss(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return z.new_zeros(())
