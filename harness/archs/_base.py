"""The autoencoder container and the architecture registry."""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch
from torch import nn

from harness.registry import Registry

ARCHS: Registry = Registry("architecture", package="harness.archs")


class AutoEncoder(nn.Module):
    """An encoder f (input -> R^d) and a decoder g (R^d -> input space).

    ``latent_map``, when set (the trainer sets it to the method's ``latent``), maps raw
    encoder outputs to the decoder's latents; otherwise evaluators use the prior's projection.
    """

    latent_map: Callable[[torch.Tensor], torch.Tensor] | None = None

    def __init__(self, encoder: nn.Module, decoder: nn.Module):
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - convenience
        return self.decoder(self.encoder(x))


def build_autoencoder(model_cfg, input_shape: tuple[int, ...], extra_outputs: int = 0) -> AutoEncoder:
    """The architecture ``model_cfg.arch``; with ``extra_outputs`` > 0 its encoder emits
    ``latent_dim + extra_outputs`` raw values (a method's extra posterior parameters, e.g. the
    S-VAE's κ) while the decoder still reads ``latent_dim``."""
    build = ARCHS.get(model_cfg.arch)
    model = build(model_cfg, tuple(input_shape))
    if extra_outputs:
        wide = dataclasses.replace(model_cfg, latent_dim=model_cfg.latent_dim + extra_outputs)
        model = AutoEncoder(build(wide, tuple(input_shape)).encoder, model.decoder)
    return model
