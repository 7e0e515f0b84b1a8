"""Precise batch-norm statistics before an evaluation (Wu & Johnson 2021, "Rethinking 'Batch'
in BatchNorm", Sec. 3: "PreciseBN").

Evaluation runs the model in eval mode, where batch norm normalises with its running
statistics: exponential moving averages (momentum 0.1) of batch statistics of *earlier*
weights. Early in training the weights move fast and these averages lag behind them, so the
first points of every convergence curve describe stale statistics rather than the model (on
MoCA the latent uniformity at epoch 1 was -0.21 in eval mode against -2.91 with batch
statistics). :func:`recompute_bn_stats` replaces the running statistics of every batch-norm
layer by the plain average of the batch statistics of the current weights over a fixed set of
training batches (PyTorch's cumulative average, ``momentum=None``; running_var averages the
unbiased batch variances, as PyTorch and fvcore's ``update_bn_stats`` do), with gradients off
and every other module state restored afterwards. Only the batch-norm layers are put in
training mode: everything else runs as at evaluation, so a method whose latent is stochastic
in training (the S-VAE samples from its posterior) feeds the decoder the latent the
evaluators will see (its mean direction), and no random stream is consumed.

The trainer calls it before each evaluation when ``eval.precise_bn`` is true (the default), on
``eval.precise_bn_batches`` batches of ``train.batch_size`` training items fixed once per run
(stream ``derive_seed(eval.seed, "precise_bn")``). The recomputed statistics stay in the model
(and its checkpoint): training itself normalises with batch statistics and is unaffected, so
the weights are the same with and without it, and a resumed run stays bitwise identical.
"""

from __future__ import annotations

from typing import Callable, Iterable

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm


def bn_layers(model: nn.Module) -> list[_BatchNorm]:
    """The batch-norm layers of ``model`` that keep running statistics."""
    return [m for m in model.modules() if isinstance(m, _BatchNorm) and m.track_running_stats]


def recompute_bn_stats(model: nn.Module, batches: Iterable[torch.Tensor],
                       forward: Callable[[torch.Tensor], object]) -> int:
    """Set the running statistics of ``model``'s batch norms to the average batch statistics of
    ``forward(x)`` over ``batches``. Returns the number of layers updated (0: nothing to do)."""
    layers = bn_layers(model)
    if not layers:
        return 0
    momenta = [bn.momentum for bn in layers]
    modes = {m: m.training for m in model.modules()}
    for bn in layers:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average over the batches that follow
    model.eval()  # the forward of an evaluation (a stochastic latent, e.g. the S-VAE's, takes its mean) ...
    for bn in layers:
        bn.train()  # ... with the batch norms collecting batch statistics
    try:
        with torch.no_grad():
            for x in batches:
                forward(x)
    finally:
        for bn, momentum in zip(layers, momenta):
            bn.momentum = momentum
        for m, training in modes.items():
            m.training = training
    return len(layers)
