"""Search spaces in sweep files: random search at an equal budget per method (docs/sweeps.md "Search").

This module is the pure part (the section's syntax, distributions, draws and the run points of
each stage); choosing the best trial from the run folders is :mod:`harness.sweep.search`.

A comparison of regularizers at one shared setting (e.g. the same λ) is not neutral: at equal λ
the regularizers differ in size by orders of magnitude. Lucic et al. (2018, "Are GANs created
equal?") compare models at an equal *tuning budget* instead: every model gets the same number
of hyper-parameter trials drawn at random from its own search space, the best trial is chosen
on held-out data, and the result is reported over several seeds. A sweep file asks for this
with a ``search`` section instead of ``grid`` / ``paired`` / ``cases``::

    search:
      budget: 20                 # trials per method (random search)
      seed: 0                    # the draws; the same file gives the same trials everywhere
      select: {metric: image_swd, mode: min}   # on the validation split (eval.split: val)
      seeds: [0, 1, 2]           # the best trial of each method is re-run with these seeds on the test split
      fixed: {method.weight: 100.0}            # optional: the fixed-λ comparison, same seeds, test split
      space:
        moca:
          method.weight: {log_uniform: [1.0, 10000.0]}
          method.tau: {uniform: [0.05, 0.5]}
        mmd:
          method.weight: {log_uniform: [1.0, 10000.0]}
          method.kernel: {choice: [imq, rbf]}

Distributions: ``log_uniform: [low, high]`` (0 < low <= high), ``uniform: [low, high]``,
``int: [low, high]`` (integers, both ends included) and ``choice: [v1, v2, ...]``.

**Stages.** Every run is an ordinary run of the sweep (stable id, skip/resume, any executor,
``--status``); the stage of a run is part of its config:

1. *trials*: ``budget`` runs per method, each the base config + ``per_method`` + the drawn
   values, with ``eval.split: val`` (the evaluators measure on the ``data.val_size`` items held
   out of training, never on the test split);
2. *fixed* (optional): each method at the base settings plus ``fixed`` with every seed of
   ``seeds``, ``eval.split: test``;
3. *tuned*: once every trial of the sweep is done or diverged, the trial of each method with
   the best final ``select.metric`` (ties: the earlier draw; diverged trials and trials without
   the metric never win) is re-run with every seed of ``seeds``, ``eval.split: test``. The
   choice is recorded in ``<results>/<sweep>/search.json``.

**Reproducible draws.** Trial ``i`` of method ``m`` draws from its own
``random.Random(derive_seed(search.seed, "search", m, i))``, using only ``random()``, whose
sequence Python guarantees across versions and platforms; continuous values are rounded to
4 significant digits so that the last bit of ``exp``/``log`` cannot differ between machines. So
the same file yields the same trial list on any machine, a larger ``budget`` keeps the earlier
trials, and a method's trials do not depend on the other methods. Because trials are drawn,
not adapted to earlier results, an interrupted search resumes by rerunning the same command:
the same trials come out, done ones are skipped, interrupted ones resume from their checkpoint.
Adaptive search (e.g. TPE) is not offered; random search is what budget curves assume.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from typing import Any

from harness.config import default_tree
from harness.dotted import paths
from harness.registry import suggest
from harness.run_folder import FIXED, TRIAL, TUNED
from harness.seeding import derive_seed

SEARCH_KEYS = ["budget", "seed", "select", "seeds", "fixed", "space"]
DISTRIBUTIONS = ["log_uniform", "uniform", "int", "choice"]
MODES = ["min", "max"]
MIN_FINAL_SEEDS = 3
SIGNIFICANT_DIGITS = 4
# keys the search sets itself on every run (the stage and the seed of each run)
STAGE_KEYS = ["eval.split", "seed"]


class SearchSpecError(ValueError):
    """A bad ``search`` section: ``section``, ``key`` and a one-line ``message``."""

    def __init__(self, section: str, key: str, message: str):
        self.section, self.key, self.message = section, key, message
        super().__init__(f"{section} {key}: {message}")


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class Distribution:
    """One key's distribution: ``kind`` in DISTRIBUTIONS, ``args`` = [low, high] or the choices."""

    kind: str
    args: tuple

    def draw(self, rng: random.Random) -> Any:
        """One value from ``rng``, using ``rng.random()`` only (stable across Python versions)."""
        u = rng.random()
        if self.kind == "choice":
            return self.args[min(int(u * len(self.args)), len(self.args) - 1)]
        low, high = self.args
        if self.kind == "int":
            return min(low + int(u * (high - low + 1)), high)
        if self.kind == "uniform":
            value = low + u * (high - low)
        else:
            value = math.exp(math.log(low) + u * (math.log(high) - math.log(low)))
        return min(max(_round(value), low), high)

    def extremes(self) -> list:
        """The values every draw lies between (checked against the config before any draw)."""
        return list(self.args) if self.kind == "choice" else list(dict.fromkeys(self.args))


def parse_distribution(section: str, key: str, spec: Any) -> Distribution:
    allowed = ("a mapping with one of log_uniform: [low, high], uniform: [low, high], int: [low, high], "
               "choice: [values]")
    if not isinstance(spec, dict) or len(spec) != 1:
        raise SearchSpecError(section, key, f"got {spec!r}; allowed: {allowed}")
    ((kind, args),) = spec.items()
    if kind not in DISTRIBUTIONS:
        raise SearchSpecError(section, key, f"unknown distribution {kind!r}{suggest(str(kind), DISTRIBUTIONS)}; "
                              f"allowed: {', '.join(DISTRIBUTIONS)}")
    if kind == "choice":
        if not isinstance(args, list) or not args:
            raise SearchSpecError(section, key, f"choice: got {args!r}; allowed: a non-empty list of values")
        return Distribution(kind, tuple(args))
    if not isinstance(args, list) or len(args) != 2:
        raise SearchSpecError(section, key, f"{kind}: got {args!r}; allowed: [low, high]")
    low, high = args
    if kind == "int":
        if not all(isinstance(x, int) and not isinstance(x, bool) for x in (low, high)):
            raise SearchSpecError(section, key, f"int: got {args!r}; allowed: [low, high], two integers")
    elif not all(_number(x) for x in (low, high)):
        raise SearchSpecError(section, key, f"{kind}: got {args!r}; allowed: [low, high], two finite numbers")
    if low > high:
        raise SearchSpecError(section, key, f"{kind}: low {low!r} > high {high!r}; allowed: low <= high")
    if kind == "log_uniform" and low <= 0:
        raise SearchSpecError(section, key, f"log_uniform: low {low!r}; allowed: 0 < low <= high")
    if kind != "int":
        low, high = float(low), float(high)
    return Distribution(kind, (low, high))


@dataclass
class SearchSpec:
    """The parsed ``search`` section."""

    budget: int
    seed: int
    metric: str
    mode: str
    seeds: list[int]
    fixed: dict[str, Any]
    space: dict[str, dict[str, Distribution]]  # method -> key -> distribution (file order)

    @property
    def methods(self) -> list[str]:
        return list(self.space)

    @property
    def space_keys(self) -> list[str]:
        keys: list[str] = []
        for dists in self.space.values():
            keys.extend(k for k in dists if k not in keys)
        return keys

    def trial_values(self, method: str, index: int) -> dict[str, Any]:
        """The drawn values of trial ``index`` (0-based) of ``method``."""
        rng = random.Random(derive_seed(self.seed, "search", method, index))
        return {key: dist.draw(rng) for key, dist in self.space[method].items()}

    def trials(self, method: str) -> list[dict[str, Any]]:
        """The trials of ``method``: ``budget`` draws, or one when its space is empty."""
        n = self.budget if self.space[method] else 1
        return [self.trial_values(method, i) for i in range(n)]


def _int_at_least(section: str, key: str, value: Any, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise SearchSpecError(section, key, f"got {value!r}; allowed: an integer >= {low}")
    return value


def parse_search(data: Any, base: dict, key_ok, method_names: list[str]) -> SearchSpec:
    """Check the ``search`` section (structure, distributions, keys each method has).

    ``key_ok(section, key)`` checks the syntax of a dotted key; ``base`` is the base run config
    tree (with ``--set``), whose ``data.val_size`` must hold out a validation split.
    """
    s = "search"
    if not isinstance(data, dict):
        raise SearchSpecError(s, "", f"got {data!r}; allowed: a mapping with {', '.join(SEARCH_KEYS)}")
    for key in data:
        if key not in SEARCH_KEYS:
            raise SearchSpecError(s, str(key), f"unknown key{suggest(str(key), SEARCH_KEYS)}; "
                                  f"allowed: {', '.join(SEARCH_KEYS)}")
    for key in ("budget", "select", "space"):
        if key not in data:
            raise SearchSpecError(s, key, "missing; allowed: " + {
                "budget": "an integer >= 1 (trials per method)",
                "select": "{metric: <validation metric>, mode: min|max}",
                "space": "a mapping of method names to {key: distribution}"}[key])
    budget = _int_at_least(s, "budget", data["budget"], 1)
    seed = _int_at_least(s, "seed", data.get("seed", 0), 0)

    select = data["select"]
    if not isinstance(select, dict) or set(select) - {"metric", "mode"} or not isinstance(select.get("metric"), str) \
            or not select.get("metric"):
        raise SearchSpecError(s, "select", f"got {select!r}; allowed: {{metric: <metric key>, mode: min|max}}")
    mode = select.get("mode", "min")
    if mode not in MODES:
        raise SearchSpecError(s, "select.mode", f"got {mode!r}; allowed: {', '.join(MODES)}")

    seeds = data.get("seeds", list(range(MIN_FINAL_SEEDS)))
    if not isinstance(seeds, list) or len(seeds) < MIN_FINAL_SEEDS or len(set(map(repr, seeds))) != len(seeds) \
            or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in seeds):
        raise SearchSpecError(s, "seeds", f"got {seeds!r}; allowed: a list of at least {MIN_FINAL_SEEDS} "
                              "distinct integers >= 0 (the final runs at the selected settings)")

    fixed = data.get("fixed") or {}
    if not isinstance(fixed, dict):
        raise SearchSpecError(s, "fixed", f"got {fixed!r}; allowed: a mapping of config keys to values")
    for key in fixed:
        key_ok("search.fixed", key)
        if key in STAGE_KEYS or key == "method.name":
            raise SearchSpecError("search.fixed", key, "set by the search itself; allowed: other config keys")

    space_doc = data["space"]
    if not isinstance(space_doc, dict) or not space_doc:
        raise SearchSpecError(s, "space", f"got {space_doc!r}; allowed: a mapping of method names to "
                              "{key: distribution}")
    space: dict[str, dict[str, Distribution]] = {}
    for method, dists in space_doc.items():
        section = f"search.space.{method}"
        if method not in method_names:
            raise SearchSpecError("search.space", str(method), f"unknown method{suggest(str(method), method_names)}; "
                                  f"allowed: {', '.join(method_names)}")
        dists = dists or {}
        if not isinstance(dists, dict):
            raise SearchSpecError(section, "", f"got {dists!r}; allowed: a mapping of config keys to distributions")
        own = paths(default_tree(method))
        space[method] = {}
        for key, spec in dists.items():
            key = key_ok(section, key)
            if key in STAGE_KEYS or key == "method.name":
                raise SearchSpecError(section, key, "set by the search itself; allowed: other config keys")
            if key.startswith("method.") and key not in own:
                have = sorted(k for k in own if k.startswith("method.") and k != "method.name")
                raise SearchSpecError(section, key, f"not a key of method {method}{suggest(key, have)}; "
                                      f"allowed: {', '.join(have)}")
            space[method][key] = parse_distribution(section, key, spec)

    val_size = (base.get("data") or {}).get("val_size", 0) if isinstance(base.get("data"), dict) else 0
    if not isinstance(val_size, int) or isinstance(val_size, bool) or val_size < 1:
        raise SearchSpecError("base", "data.val_size", f"got {val_size!r}; allowed: an integer >= 1 (a search "
                              "selects on a validation split held out of training, never on the test split)")
    return SearchSpec(budget, seed, select["metric"], mode, list(seeds), dict(fixed), space)


# ---------------------------------------------------------------------------- the run points


@dataclass
class Point:
    """One run of a search: its axis values, the section that supplied them, its stage."""

    values: dict[str, Any]
    section: str
    stage: str
    method: str
    index: int  # trial number (draw order) or seed position


def size(spec: SearchSpec, selected: dict[str, dict[str, Any]] | None = None) -> int:
    """The number of runs :func:`points` gives, counted without drawing a single trial (an
    upper bound: a tuned or fixed run may coincide with another and is run once)."""
    trials = sum(spec.budget if spec.space[m] else 1 for m in spec.methods)
    fixed = len(spec.methods) * len(spec.seeds) if spec.fixed else 0
    return trials + fixed + len(selected or {}) * len(spec.seeds)


def points(spec: SearchSpec, base_seed: int, selected: dict[str, dict[str, Any]] | None = None) -> list[Point]:
    """The runs of the sweep: every trial, then the fixed-setting runs, then (with
    ``selected``: method -> drawn values of its chosen trial) the tuned runs."""
    out: list[Point] = []
    for method in spec.methods:
        for i, values in enumerate(spec.trials(method)):
            out.append(Point({"method.name": method, **values, "eval.split": "val", "seed": base_seed},
                             f"search.space.{method}", TRIAL, method, i))
    if spec.fixed:
        for method in spec.methods:
            for j, seed in enumerate(spec.seeds):
                out.append(Point({"method.name": method, **spec.fixed, "eval.split": "test", "seed": seed},
                                 "search.fixed", FIXED, method, j))
    for method, values in (selected or {}).items():
        for j, seed in enumerate(spec.seeds):
            out.append(Point({"method.name": method, **values, "eval.split": "test", "seed": seed},
                             f"search.space.{method}", TUNED, method, j))
    return out


def probe_points(spec: SearchSpec) -> list[Point]:
    """For each method and key, the ends of its range (or each choice) with the other keys at
    trial 0's values: a range that reaches invalid values fails before any draw is run."""
    out, seen = [], set()
    for method in spec.methods:
        first = spec.trial_values(method, 0)
        for key, dist in spec.space[method].items():
            for value in dist.extremes():
                values = {"method.name": method, **first, key: value, "eval.split": "val"}
                tag = json.dumps(values, sort_keys=True, default=repr)
                if tag not in seen:
                    seen.add(tag)
                    out.append(Point(values, f"search.space.{method}", TRIAL, method, -1))
    return out
