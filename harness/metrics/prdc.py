"""Precision, recall, density and coverage of generated samples in a feature space.

* **Precision / recall** (Kynkäänniemi et al. 2019, "Improved precision and recall metric for
  assessing generative models", Eq. 1-3): the real manifold is the union of the balls around
  each real feature with radius the distance to its k-th nearest real neighbour; precision is
  the fraction of fake samples inside it, recall the fraction of real samples inside the
  fake manifold built the same way from the fake features.
* **Density / coverage** (Naeem et al. 2020, "Reliable fidelity and diversity metrics for
  generative models", Eq. 6-7): density = (1/kM) Σ_j Σ_i 1[Y_j ∈ B(X_i, NND_k(X_i))] (how many
  real balls each fake sample falls in, on average, divided by k; 1 when the two sets are
  alike); coverage = (1/N) Σ_i 1[∃ j: Y_j ∈ B(X_i, NND_k(X_i))] (the fraction of real balls
  that hold at least one fake sample).

Computed exactly as the authors' reference package ``prdc`` 0.2 (``compute_prdc``: Euclidean
distances, the k-th neighbour excluding the point itself, strict ``<``), which
tests/test_prdc.py checks value for value, but in torch, in float64, in row chunks (memory
O(chunk × N) instead of three full N × N matrices) and without its fixed ``n_jobs=8`` and
print; the real radii, which depend only on the reference set, are computed once per run.
"""

from __future__ import annotations

import torch

CHUNK = 1024


def _as_tensor(x) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64)


def knn_radii(x, k: int, chunk: int = CHUNK) -> torch.Tensor:
    """Distance of each row of ``x`` to its k-th nearest other row (N ≥ k + 1)."""
    x = _as_tensor(x)
    if not 1 <= k < len(x):
        raise ValueError(f"k must be in [1, {len(x) - 1}] for {len(x)} points, got {k}")
    out = torch.empty(len(x), dtype=torch.float64)
    for i in range(0, len(x), chunk):
        d = torch.cdist(x[i : i + chunk], x)
        out[i : i + chunk] = d.topk(k + 1, dim=1, largest=False).values[:, k]  # index 0: the point itself
    return out


def prdc(real, fake, k: int, real_radii: torch.Tensor | None = None, chunk: int = CHUNK) -> dict[str, float]:
    """``{"precision", "recall", "density", "coverage"}`` of ``fake`` (M × d) against ``real``
    (N × d) with k nearest neighbours; ``real_radii`` = :func:`knn_radii` ``(real, k)`` if
    already known."""
    real, fake = _as_tensor(real), _as_tensor(fake)
    if real.shape[1:] != fake.shape[1:] or real.dim() != 2:
        raise ValueError(f"real and fake must be N×d and M×d, got {tuple(real.shape)} and {tuple(fake.shape)}")
    r_real = knn_radii(real, k, chunk) if real_radii is None else real_radii
    r_fake = knn_radii(fake, k, chunk)
    in_real = torch.zeros(len(fake), dtype=torch.float64)  # per fake: number of real balls it is in
    recalled = torch.zeros(len(real), dtype=torch.bool)  # per real: inside some fake ball
    nearest_fake = torch.full((len(real),), float("inf"), dtype=torch.float64)
    for j in range(0, len(fake), chunk):
        d = torch.cdist(fake[j : j + chunk], real)  # chunk × N
        in_real[j : j + chunk] = (d < r_real[None, :]).sum(1).double()
        recalled |= (d < r_fake[j : j + chunk, None]).any(0)
        nearest_fake = torch.minimum(nearest_fake, d.min(0).values)
    return {"precision": float((in_real > 0).double().mean()),
            "recall": float(recalled.double().mean()),
            "density": float(in_real.mean() / k),
            "coverage": float((nearest_fake < r_real).double().mean())}
