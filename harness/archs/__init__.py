"""Autoencoder architectures, one module each, registered by name (``model.arch``).

An architecture is one file: a builder registered with ``@ARCHS.register(name, Config=...,
check_run=...)``. ``Config`` is a dataclass of its own keys under ``model:`` (the MLP's
``hidden``; the convolutional nets share ``ConvConfig.width``; :mod:`harness.plugin_settings`);
``check_run(cfg)`` checks the data against it at validation (``conv_check_run``: square images
of a side the architecture can decode).

A builder is called as ``builder(model_cfg, input_shape)`` with ``input_shape`` the shape
of one input item ((C, H, W) for images, (D,) for vectors) and returns an
:class:`AutoEncoder`. Encoders output raw ``latent_dim`` vectors (the prior projects them);
image decoders output images in [0, 1] (sigmoid), vector decoders are linear.
"""

from __future__ import annotations

from harness.archs._base import ARCHS, AutoEncoder, build_autoencoder

__all__ = ["ARCHS", "AutoEncoder", "build_autoencoder"]
