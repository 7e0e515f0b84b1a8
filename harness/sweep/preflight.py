"""What a sweep's runs need, made ready once in the submitting process, before any run folder
is written (local, SLURM and debug executors alike).

1. **Data**: each distinct dataset of the runs to start is resolved by its ``prepare`` hook
   (:func:`harness.datasets.prepare_dataset`): its files are verified in place (md5) or
   downloaded once, with one progress bar, here rather than in every run at once. A missing
   or damaged dataset stops the sweep in one line (exit 2) with nothing written.
2. **Feature networks**: the domain feature network of the image metrics (``eval.fid`` /
   ``eval.prdc`` with ``features: lenet``) is loaded from its cache, or trained once now, its
   notice on the sweep's stderr, not in the first run's ``train.log``. This module is the one
   place the sweep calls the feature-network entry point
   (:func:`harness.evaluators.feature_nets.load_or_train_feature_net`).

A run that failed earlier because its data was missing is recorded as such by the trainer
(``failure: data`` in status.json) and is shown as ``pending``, so it is simply started again
once this check passes (:func:`harness.sweep.state.run_state`).
"""

from __future__ import annotations

import sys
from typing import Iterable


class PreflightError(RuntimeError):
    """What the runs need is not there; one line."""


def _data_key(data_cfg) -> tuple:
    from harness.datasets import data_root

    return (data_cfg.name, str(data_root(data_cfg).resolve()), bool(data_cfg.download))


def prepare_data(configs: Iterable) -> None:
    """Resolve each distinct dataset of ``configs`` once (see the module docstring)."""
    from harness.datasets import DatasetMissing, prepare_dataset

    seen = set()
    for cfg in configs:
        key = _data_key(cfg.data)
        if key in seen:
            continue
        seen.add(key)
        try:
            prepare_dataset(cfg.data)
        except DatasetMissing as e:
            raise PreflightError(str(e)) from None


def prepare_feature_nets(configs: Iterable, notice=None) -> None:
    """Load (or train once) each distinct feature network that ``configs`` need, on the CPU;
    its notice goes to ``notice`` (default: stderr)."""
    from harness.datasets import DatasetMissing, load_dataset
    from harness.evaluators import needed
    from harness.evaluators.feature_nets import load_or_train_feature_net

    seen = set()
    for cfg in configs:
        for name in needed(cfg):
            d = cfg.data
            key = (name, *_data_key(d), d.image_size, cfg.eval.fid.weights if name == "inception" else None)
            if key in seen:
                continue
            seen.add(key)
            try:
                data = load_dataset(d, cfg.seed)
                load_or_train_feature_net(name, cfg, data, "cpu")
            except (DatasetMissing, OSError, ValueError, RuntimeError) as e:
                raise PreflightError(f"{name} feature network: {str(e).splitlines()[0] if str(e) else type(e).__name__}") from None


def preflight(configs: list) -> None:
    """Data, then feature networks, for the run configs about to start; :class:`PreflightError`
    (one line) when something they need cannot be had."""
    if not configs:
        return
    prepare_data(configs)
    prepare_feature_nets(configs)
    sys.stderr.flush()
