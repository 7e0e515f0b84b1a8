"""Evaluation metrics the trainer runs every ``eval.every`` epochs, registered by name.

An evaluator is a class constructed once per run as ``Evaluator(config, ctx)`` (its own settings
block and an :class:`EvalContext`: run config, data, prior, device, run folder, evaluation seed
and the feature-network provider), so it can fix projections, prior samples and cached
reference statistics, and called as
``evaluator(model, epoch, final) -> dict[str, float]`` on the autoencoder in eval mode; the values
are logged to the epoch's line in ``metrics.jsonl``. The metric computations themselves are
pure functions in :mod:`harness.metrics`.
"""

from __future__ import annotations

from harness.evaluators._base import (
    EVALUATORS, EvalContext, Evaluator, build_evaluator, build_evaluators, logged_metrics, make_context, needed,
    prepare_feature_nets,
)

__all__ = ["EVALUATORS", "EvalContext", "Evaluator", "build_evaluator", "build_evaluators", "logged_metrics",
           "make_context", "needed", "prepare_feature_nets"]
