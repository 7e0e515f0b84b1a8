"""Readable names for runs and config keys (torch-free; used by the sweep engine, the
figures and the tables): ``format_value`` (``0.1``, ``1e-05``, ``128x128``, ``true``),
``short_labels`` (``method.name`` -> ``method``) and ``run_name``
(``method=moca,tau=0.1,seed=0``). A name is for people (tables, legends), never a path.
"""

from __future__ import annotations

import math
from typing import Any


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
