"""Run identity: stable ids, readable names, and folders that cannot escape the results root.

* The **id** of a run is the content hash of its resolved config
  (:func:`harness.config.config_fingerprint`), after resetting the fields that only say *how*
  a run executes, not *what* it computes (:data:`harness.config.EXECUTION_ONLY`: threads, progress bar, TensorBoard, data location). The same
  run in two sweeps, or the same sweep run twice, therefore gets the same id, and a run folder
  can be recognised from its ``config.json`` alone.
* The **name** is built from the values the sweep varies (``method=moca,tau=0.1,seed=0``); it
  is for people (tables, legends), never a path.
* The **folder** of a run is ``<results root>/<sweep name>/<run id>``. Sweep names come from
  YAML and ids from a manifest on disk, so both are checked against strict patterns and every
  path is resolved and checked to lie inside the results root before it is used
  (:func:`harness.run_folder.sweep_dir` / :func:`~harness.run_folder.run_dir`).
"""

from __future__ import annotations

import math
from typing import Any

from harness.config import RunConfig, tree_fingerprint, without_execution_only
from harness.run_folder import (  # noqa: F401  (the results layout lives with the run folder)
    RUN_ID_RE, SWEEP_NAME_ALLOWED, SWEEP_NAME_RE, PathEscape, inside, run_dir, sweep_dir, valid_sweep_name,
)


def run_id(cfg: RunConfig, tree: dict | None = None) -> str:
    """The stable id of a run: the fingerprint of its config without execution-only fields
    (``tree``: ``cfg.to_dict()`` if the caller has it already)."""
    return tree_fingerprint(without_execution_only(tree if tree is not None else cfg.to_dict()))


def format_value(value: Any) -> str:
    """A short, unambiguous text for a config value (``0.1``, ``1e-05``, ``128x128``, ``true``)."""
    if isinstance(value, bool) or value is None:
        return {True: "true", False: "false", None: "null"}[value]
    if isinstance(value, float):
        if math.isfinite(value):
            short = f"{value:g}"
            return short if float(short) == value else repr(value)
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "x".join(format_value(v) for v in value)
    return str(value)


def short_labels(keys: list[str]) -> dict[str, str]:
    """Column labels for dotted keys: the last component (``method.name`` -> ``method``),
    or the whole dotted key where two keys would get the same label."""

    def short(key: str) -> str:
        parts = key.split(".")
        return parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]

    labels = {k: short(k) for k in keys}
    counts: dict[str, int] = {}
    for label in labels.values():
        counts[label] = counts.get(label, 0) + 1
    return {k: (label if counts[label] == 1 else k) for k, label in labels.items()}


def run_name(values: dict[str, Any], keys: list[str]) -> str:
    """``label=value`` pairs of the varied ``keys`` present in ``values``, comma-separated."""
    labels = short_labels(keys)
    return ",".join(f"{labels[k]}={format_value(values[k])}" for k in keys if k in values)
