"""Latent-space diagnostics: how close the encoded distribution is to the prior.

* :func:`sliced_wasserstein` — sliced 2-Wasserstein distance between the latents and prior
  samples along fixed unit directions, the measure of the paper's Fig. 2 (left). It is the
  quantity of POT's ``ot.sliced_wasserstein_distance(X, Y, projections=P)`` (p = 2):
  ``sqrt(mean_θ W_2²(θ#X, θ#Y))``. For two equal-size, uniformly weighted sets the 1-D
  transport plan pairs sorted projections, so it is computed with two sorts here (POT's
  general quantile route costs ~0.15 s for 1000 points × 128 directions, too slow to run
  every epoch); other sizes go through POT itself.
* :func:`sphere_sliced_wasserstein_unif` — POT's spherical sliced Wasserstein distance to the
  uniform distribution on S^{d-1} (Bonet et al. 2023), with fixed 2-planes.
* :func:`singular_values` and :func:`spectrum_summary` — the spectrum of the (uncentred)
  latent matrix, the isotropy measure of the paper's Fig. 3: for latents uniform on the
  sphere all singular values are close to sqrt(N/d).
* :func:`uniformity` — Wang & Isola (2020) uniformity loss log E exp(−t‖z−z'‖²) over
  distinct pairs, t = 2; the quantity MoCA's negative term estimates (docs/paper.md, "The
  method"). About −4 for uniform latents on S^127, 0 for a collapsed set.
* :func:`mean_norm` — ‖mean z‖, 0 for any centred prior.

The sliced distances and the uniformity run in float32 (relative error ~1e-6, and 2-3× faster
than float64: the evaluator runs every epoch); the spectrum is computed in float64.
Projections are passed in (drawn once per run by the evaluator) so the values of different
epochs are computed with the same directions and are comparable.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def random_projections(dim: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` directions uniform on S^{dim-1}, as the columns of a (dim, n) float64 matrix
    (POT's ``get_random_projections`` layout)."""
    p = torch.randn(dim, n, generator=generator, dtype=torch.float64)
    return p / p.norm(dim=0, keepdim=True)


def sphere_projections(dim: int, n: int, generator: torch.Generator) -> torch.Tensor:
    """``n`` random 2-planes (uniform on the Stiefel manifold V_{dim,2}), shape (n, dim, 2):
    POT's ``get_projections_sphere`` (QR of a Gaussian matrix) with our own generator."""
    q, _ = torch.linalg.qr(torch.randn(n, dim, 2, generator=generator, dtype=torch.float64))
    return q


def sort_rows(x: torch.Tensor) -> torch.Tensor:
    """Sort each row of a contiguous 2-D tensor, in place on the CPU through numpy's SIMD sort
    (3-4× faster than ``torch.sort`` there); ``torch.sort`` elsewhere."""
    if x.device.type == "cpu" and x.is_contiguous() and not x.requires_grad:
        x.numpy().sort(axis=1)
        return x
    return torch.sort(x, dim=1).values


def sliced_wasserstein(x: torch.Tensor, y: torch.Tensor, projections: torch.Tensor) -> float:
    """Sliced 2-Wasserstein distance between point sets ``x`` and ``y`` (uniform weights)
    along the unit columns of ``projections`` (dim, n_projections)."""
    import ot

    if len(x) != len(y):
        x, y, projections = x.double(), y.double(), projections.double().to(x.device)
        return float(ot.sliced_wasserstein_distance(x, y, projections=projections, p=2))
    x, y, projections = x.float(), y.float(), projections.float().to(x.device)
    px = sort_rows(projections.T @ x.T)  # (n_projections, N)
    py = sort_rows(projections.T @ y.T)
    return float((px - py).pow(2).mean().sqrt())


def sphere_sliced_wasserstein_unif(z: torch.Tensor, projections: torch.Tensor) -> float:
    """Spherical sliced 2-Wasserstein distance of unit vectors ``z`` to Unif(S^{d-1}) (POT),
    with fixed 2-planes ``projections`` of shape (n_projections, dim, 2)."""
    import ot

    z = F.normalize(z.float(), dim=-1)
    # POT reshapes by ``n_projections`` even when projections are given: pass both.
    return float(
        ot.sliced_wasserstein_sphere_unif(
            z, n_projections=projections.shape[0], projections=projections.float().to(z.device)
        )
    )


def singular_values(z: torch.Tensor) -> torch.Tensor:
    """Singular values of the N×d latent matrix (not centred, as in the paper), descending."""
    return torch.linalg.svdvals(z.double())


def spectrum_summary(sv: torch.Tensor) -> dict[str, float]:
    """Largest and smallest singular value, their ratio (inf if the matrix is rank deficient
    to machine precision) and the normalised entropy of the energy spectrum
    p_i = s_i² / Σ s_j², H(p) / log k with k = len(sv): 1 for perfectly isotropic latents,
    0 when all the energy is in one direction."""
    sv = sv.double()
    smax, smin = float(sv.max()), float(sv.min())
    p = sv.pow(2) / sv.pow(2).sum()
    nz = p[p > 0]
    entropy = float(-(nz * nz.log()).sum() / math.log(len(sv))) if len(sv) > 1 else 1.0
    return {
        "sv_max": smax,
        "sv_min": smin,
        "sv_ratio": smax / smin if smin > 0 else math.inf,
        "sv_entropy": entropy,
    }


def uniformity(z: torch.Tensor, t: float = 2.0) -> float:
    """Wang & Isola (2020): log of the mean over distinct pairs i < j of exp(−t‖z_i − z_j‖²),
    as their ``torch.pdist(z).pow(2).mul(-t).exp().mean().log()``, computed with a
    log-sum-exp over the Gram matrix (stable, and faster than pdist)."""
    z = z.float()
    n = len(z)
    if n < 2:
        raise ValueError("uniformity needs at least two points")
    sq = z.pow(2).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2 * z @ z.T).clamp_min_(0)
    logits = (-t * d2).fill_diagonal_(-math.inf)  # ordered pairs i != j: each pair twice
    return float(torch.logsumexp(logits.flatten(), 0) - math.log(n * (n - 1)))


def mean_norm(z: torch.Tensor) -> float:
    """Euclidean norm of the mean latent."""
    return float(z.double().mean(0).norm())
