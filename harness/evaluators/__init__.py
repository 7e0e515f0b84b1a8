"""Evaluation metrics the trainer runs every ``eval.every`` epochs, registered by name.

An evaluator is a class constructed once per run as ``Evaluator(cfg, data, prior, device, run_dir)``
(so it can fix projections, prior samples and cached reference statistics) and called as
``evaluator(model, epoch, final) -> dict[str, float]`` on the autoencoder in eval mode; the values
are logged to the epoch's line in ``metrics.jsonl``. The metric computations themselves are
pure functions in :mod:`harness.metrics`.
"""

from __future__ import annotations

from harness.evaluators._base import EVALUATORS, Evaluator, build_evaluators, logged_metrics

__all__ = ["EVALUATORS", "Evaluator", "build_evaluators", "logged_metrics"]
