"""Fully connected autoencoder (``model.arch: mlp``).

Used for the paper's synthetic latent-matching task (a 2-layer MLP from R^100 to R^128:
``hidden: [H]``) and for the MNIST t-SNE experiment of appendix B (encoder with 3 hidden
layers, decoder with 2, width 128, ReLU, latent 6: ``hidden: [128, 128, 128]``,
``decoder_hidden: [128, 128]``). Image inputs are flattened; the image decoder ends in a
sigmoid and is reshaped back to (C, H, W); vector decoders are linear.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from torch import nn

from harness.archs._base import ARCHS, AutoEncoder
from harness.errors import require


@dataclass
class MLPConfig:
    """The MLP's own keys under ``model:``."""

    hidden: list[int] = field(default_factory=lambda: [128, 128])  # encoder widths
    decoder_hidden: list[int] | None = None  # decoder widths; None mirrors `hidden`

    def check(self, p: str) -> None:
        for key in ("hidden", "decoder_hidden"):
            v = getattr(self, key)
            require(v is None or all(w >= 1 for w in v), f"{p}.{key}", v, "a list of integers >= 1")


def mlp(widths: list[int]) -> nn.Sequential:
    """Linear layers between consecutive ``widths`` with ReLU between (not after the last)."""
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(widths) - 2:
            layers.append(nn.ReLU())
    return nn.Sequential(*layers)


@ARCHS.register("mlp", Config=MLPConfig)
def build_mlp(model_cfg, input_shape: tuple[int, ...]) -> AutoEncoder:
    n_in = math.prod(input_shape)
    hidden = list(model_cfg.hidden)
    dec_hidden = list(model_cfg.decoder_hidden) if model_cfg.decoder_hidden is not None else hidden[::-1]
    encoder = nn.Sequential(nn.Flatten(), mlp([n_in, *hidden, model_cfg.latent_dim]))
    decoder_layers: list[nn.Module] = [mlp([model_cfg.latent_dim, *dec_hidden, n_in])]
    if len(input_shape) > 1:  # images: pixels in [0, 1], back to (C, H, W)
        decoder_layers += [nn.Sigmoid(), nn.Unflatten(1, tuple(input_shape))]
    return AutoEncoder(encoder, nn.Sequential(*decoder_layers))
