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
  path is resolved and checked to lie inside the results root before it is used.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from harness.config import RunConfig, tree_fingerprint, without_execution_only

SWEEP_NAME_RE = re.compile(r"\A[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")  # \Z: "$" allows a final newline
SWEEP_NAME_ALLOWED = "1-64 characters from letters, digits, '_', '-', '.', starting with a letter or digit"
RUN_ID_RE = re.compile(r"\A[0-9a-f]{12}\Z")


class PathEscape(ValueError):
    """A name or path that would leave the results root."""


def run_id(cfg: RunConfig, tree: dict | None = None) -> str:
    """The stable id of a run: the fingerprint of its config without execution-only fields
    (``tree``: ``cfg.to_dict()`` if the caller has it already)."""
    return tree_fingerprint(without_execution_only(tree if tree is not None else cfg.to_dict()))


def valid_sweep_name(name: Any) -> bool:
    return isinstance(name, str) and bool(SWEEP_NAME_RE.match(name))


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved, or :class:`PathEscape` when it is not strictly inside ``root``."""
    root_r, path_r = root.resolve(), path.resolve()
    if path_r == root_r or root_r not in path_r.parents:
        raise PathEscape(f"{path} is outside {root}")
    return path_r


def sweep_dir(results_root: str | Path, name: str) -> Path:
    """``<results root>/<name>``, refusing names that are not plain folder names."""
    if not valid_sweep_name(name):
        raise PathEscape(f"sweep name {name!r} is not allowed; allowed: {SWEEP_NAME_ALLOWED}")
    root = Path(results_root)
    inside(root, root / name)
    return root / name


def run_dir(sweep_folder: Path, rid: str) -> Path:
    """The folder of run ``rid`` inside a sweep folder (ids are 12 lowercase hex digits)."""
    if not isinstance(rid, str) or not RUN_ID_RE.match(rid):
        raise PathEscape(f"run id {rid!r} is not 12 hexadecimal digits")
    inside(sweep_folder, sweep_folder / rid)
    return sweep_folder / rid


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
