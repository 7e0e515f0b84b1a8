"""Reconstruction error as the paper reports it.

The paper's reconstruction term is the squared error summed over the pixels (or coordinates)
of an item, averaged over items (docs/paper.md, "The method": CIFAR-10 values such as 25 and 50;
Fig. 8 plots its final value against λ). Items are reconstructed through the prior's
projection, x̂ = g(P(f(x))), exactly as in training.
"""

from __future__ import annotations

import torch


def summed_squared_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """Per-item ‖x − x̂‖², summed over all non-batch dimensions (shape (N,))."""
    return (x - x_hat.reshape(x.shape)).pow(2).flatten(1).sum(1)


def reconstruction_error(model, x: torch.Tensor, to_float, project, device, batch_size: int = 500) -> float:
    """Mean over the items ``x`` of the summed squared error of their reconstructions.

    ``to_float`` maps stored items to model inputs (uint8 images -> [0, 1]); ``project`` maps
    raw encoder outputs onto the prior's support. Accumulated in float64 over batches.
    """
    total = 0.0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            xb = to_float(x[i : i + batch_size]).to(device)
            x_hat = model.decoder(project(model.encoder(xb)))
            total += float(summed_squared_error(xb, x_hat).sum(dtype=torch.float64))
    return total / len(x)
