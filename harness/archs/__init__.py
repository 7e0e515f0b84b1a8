"""Autoencoder architectures, one module each, registered by name (``model.arch``).

A builder is called as ``builder(model_cfg, input_shape)`` with ``input_shape`` the shape
of one input item ((C, H, W) for images, (D,) for vectors) and returns an
:class:`AutoEncoder`. Encoders output raw ``latent_dim`` vectors (the prior projects them);
image decoders output images in [0, 1] (sigmoid), vector decoders are linear.
"""

from __future__ import annotations

from harness.archs._base import ARCHS, AutoEncoder, build_autoencoder

__all__ = ["ARCHS", "AutoEncoder", "build_autoencoder"]
