"""The autoencoder container and the architecture registry."""

from __future__ import annotations

import torch
from torch import nn

from harness.registry import Registry

ARCHS: Registry = Registry("architecture", package="harness.archs")


class AutoEncoder(nn.Module):
    """An encoder f (input -> R^d) and a decoder g (R^d -> input space)."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - convenience
        return self.decoder(self.encoder(x))


def build_autoencoder(model_cfg, input_shape: tuple[int, ...]) -> AutoEncoder:
    return ARCHS.get(model_cfg.arch)(model_cfg, tuple(input_shape))
