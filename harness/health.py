"""Warnings about runs that finish without a NaN but did not train: the criteria, stated once.

A run that ends ``done`` can still be useless: its latents collapsed to a point (every
input encoded alike; MoCA's loss then sits at its chance level log(K + 1), WAE-MMD's at a
constant), or its loss never moved. The trainer checks two criteria at the end of a run and
``harness.train`` records any warnings in ``status.json`` (``warnings``: a list of lines);
``harness.collect`` shows them in the ``warning`` column of ``runs.csv``. A warning never
changes the run's state.

* **latent collapse**: encode the first N = min(1000, training size) training items (model
  in eval mode, through the prior's projection) and draw N prior samples from a stream of
  their own; the total variance of the latents, tr Cov(z) = mean ‖z − z̄‖², below
  :data:`COLLAPSE_RATIO` (1%) of the prior samples' (1 − 1/d on the unit sphere, d for
  N(0, I_d)) means collapse.
* **flat loss**: with at least :data:`MIN_EPOCHS` (3) epochs logged, the best per-epoch
  training loss after the first never fell :data:`MIN_IMPROVEMENT` (1%) of its magnitude
  below the first epoch's.
"""

from __future__ import annotations

import math

import torch

COLLAPSE_RATIO = 0.01
MIN_EPOCHS = 3
MIN_IMPROVEMENT = 0.01


def total_variance(z: torch.Tensor) -> float:
    """tr Cov(z) = mean over rows of ‖z_i − z̄‖² (biased), in float64."""
    z = z.double()
    return float((z - z.mean(0)).pow(2).sum(1).mean())


def latent_collapse(z: torch.Tensor, prior_samples: torch.Tensor) -> str | None:
    """A warning line when the latents' total variance is below 1% of the prior's."""
    spread, reference = total_variance(z), total_variance(prior_samples)
    if reference > 0 and spread < COLLAPSE_RATIO * reference:
        return (f"latent collapse: the latents of {len(z)} training items have total variance {spread:.3g}, "
                f"{100 * spread / reference:.2g}% of the prior's {reference:.3g} (threshold {100 * COLLAPSE_RATIO:g}%)")
    return None


def flat_loss(losses: list[float]) -> str | None:
    """A warning line when the per-epoch training loss never improved by 1% on epoch 1."""
    values = [v for v in losses if isinstance(v, (int, float)) and math.isfinite(v)]
    if len(values) < MIN_EPOCHS:
        return None
    first, best = values[0], min(values[1:])
    if best > first - MIN_IMPROVEMENT * abs(first):
        return (f"flat loss: the training loss never fell {100 * MIN_IMPROVEMENT:g}% below its first-epoch value "
                f"in {len(values)} epochs (first {first:.4g}, best {best:.4g})")
    return None
