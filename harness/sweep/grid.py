"""The sweep algebra: grids of runs as lists of points, and five ways to combine them.

A *point* is a mapping of dotted config keys to values (``{"method.tau": 0.1, "seed": 0}``); a
*grid* is a list of points, in run order. Everything a sweep file's ``grid`` / ``paired`` /
``cases`` sections say is a combination of (in the spirit of disentanglement_lib's
``hyperparams.py``)::

    sweep("method.tau", [0.05, 0.1])         # one key over values        -> 2 points
    fixed("train.epochs", 20)                # one key at one value       -> 1 point
    cases([{"a": 1}, {"a": 2, "b": 3}])      # partial configs as given   -> 2 points
    zip_(sweep("m", [x, y]), sweep("w", [1, 2]))   # pointwise, equal lengths
    chain(g1, g2)                            # g1's points, then g2's
    product(g1, g2, g3)                      # every combination; g1 varies slowest

The module is pure: no config, no files, no harness import. Turning the points into validated
run configs (the base config, ``per_method``, ``--set``) is :mod:`harness.sweep.spec`'s job.
"""

from __future__ import annotations

import itertools
import math
from typing import Any, Iterable, Iterator

Point = dict[str, Any]
Grid = list[Point]


class GridError(ValueError):
    """Grids that cannot be combined (zipped grids of different lengths)."""


def sweep(key: str, values: Iterable[Any]) -> Grid:
    """One point per value of ``key``."""
    return [{key: value} for value in values]


def fixed(key: str, value: Any, length: int = 1) -> Grid:
    """``length`` points, each setting ``key`` to ``value`` (zip it with a grid of that length)."""
    return [{key: value} for _ in range(length)]


def cases(points: Iterable[Point]) -> Grid:
    """The points as given (each a partial config; copies, so the caller's mappings stay theirs)."""
    return [dict(point) for point in points]


def zip_(*grids: Grid) -> Grid:
    """Point ``i`` merges point ``i`` of every grid (later grids win a shared key)."""
    lengths = [len(g) for g in grids]
    if len(set(lengths)) > 1:
        raise GridError(f"zipped grids of different lengths {lengths}")
    return [_merge(points) for points in zip(*grids)]


def chain(*grids: Grid) -> Grid:
    """The points of every grid, one grid after the other."""
    return [dict(point) for grid in grids for point in grid]


def product(*grids: Grid) -> Grid:
    """Every combination of one point per grid, merged (later grids win a shared key); the
    first grid varies slowest, as in nested loops written in the grids' order."""
    return list(iter_product(*grids))


def iter_product(*grids: Grid) -> Iterator[Point]:
    """:func:`product` one point at a time (a large grid is counted first, :func:`size`)."""
    for points in itertools.product(*grids):
        yield _merge(points)


def size(*grids: Grid) -> int:
    """The number of points of ``product(*grids)``, without building them."""
    return math.prod(len(g) for g in grids)


def _merge(points: Iterable[Point]) -> Point:
    out: Point = {}
    for point in points:
        out.update(point)
    return out
