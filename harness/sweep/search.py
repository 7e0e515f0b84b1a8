"""Search spaces in sweep files: random search at an equal budget per method (docs/sweeps.md "Search").

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import default_tree
from harness.registry import suggest
from harness.run_folder import FIXED, SEARCH_FILE, TRIAL, TUNED  # noqa: F401  (the results layout)
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
        own = _flat_keys(default_tree(method))
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


def _flat_keys(tree: Any, prefix: str = "") -> set[str]:
    if isinstance(tree, dict):
        out = {prefix} if prefix else set()
        for k, v in tree.items():
            out |= _flat_keys(v, f"{prefix}.{k}" if prefix else k)
        return out
    return {prefix}


# ---------------------------------------------------------------------------- the run points


@dataclass
class Point:
    """One run of a search: its axis values, the section that supplied them, its stage."""

    values: dict[str, Any]
    section: str
    stage: str
    method: str
    index: int  # trial number (draw order) or seed position


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


# ---------------------------------------------------------------------------- selection


@dataclass
class TrialResult:
    id: str
    name: str
    index: int
    state: str
    value: float | None  # the final select.metric on the validation split (None: none)
    train_time_s: float | None  # summed epoch_time_s (training only, no evaluation)


@dataclass
class Selection:
    """The outcome of the search stage: per method its trials and the chosen one."""

    ready: bool  # every trial is done or diverged
    waiting: int  # trials not final yet
    trials: dict[str, list[TrialResult]] = field(default_factory=dict)
    chosen: dict[str, TrialResult] = field(default_factory=dict)
    values: dict[str, dict[str, Any]] = field(default_factory=dict)  # method -> drawn values of the choice
    problems: list[str] = field(default_factory=list)


def final_metric(metrics_path: Path, metric: str) -> tuple[float | None, float | None, list[str]]:
    """(the last logged value of ``metric``, summed ``epoch_time_s``, every metric key logged)."""
    value, time_s, keys = None, 0.0, []
    try:
        lines = metrics_path.read_text().splitlines()
    except OSError:
        return None, None, []
    for line in lines:
        try:
            row = json.loads(line)
        except ValueError:
            continue
        if not isinstance(row, dict):
            continue
        keys.extend(k for k in row if k not in keys)
        if isinstance(row.get("epoch_time_s"), (int, float)):
            time_s += float(row["epoch_time_s"])
        v = row.get(metric)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            value = float(v) if math.isfinite(v) else None
    return value, time_s, keys


def select(spec: SearchSpec, trial_runs: dict[str, list], states: dict[str, tuple[str, dict | None]],
           folder: Path) -> Selection:
    """Choose the best trial of each method from the run folders (see the module docstring)."""
    from harness.sweep.identity import run_dir
    from harness.sweep.state import DIVERGED, DONE, FINAL, METRICS

    sel = Selection(ready=True, waiting=0)
    for method, runs in trial_runs.items():
        results = []
        for index, run in enumerate(runs):
            state = states[run.id][0]
            value, time_s, keys = (None, None, [])
            if state == DONE:
                value, time_s, keys = final_metric(run_dir(folder, run.id) / METRICS, spec.metric)
                if value is None:
                    shown = ", ".join(k for k in keys if k not in ("epoch", "step")) or "none"
                    sel.problems.append(f"trial {run.id} ({run.name}) logged no finite '{spec.metric}' "
                                        f"(logged: {shown})")
            elif state not in FINAL:
                sel.ready = False
                sel.waiting += 1
            results.append(TrialResult(run.id, run.name, index, state, value, time_s))
        sel.trials[method] = results
        scored = [r for r in results if r.value is not None]
        if scored:
            key = (lambda r: (r.value, r.index)) if spec.mode == "min" else (lambda r: (-r.value, r.index))
            best = min(scored, key=key)
            sel.chosen[method] = best
            sel.values[method] = spec.trial_values(method, best.index) if spec.space[method] else {}
        elif sel.ready or all(r.state in (DONE, DIVERGED) for r in results):
            sel.problems.append(f"method {method}: no trial has a finite '{spec.metric}'; it gets no tuned runs")
    return sel


def search_record(sweep, selection: Selection, stages: dict[str, list[dict]]) -> dict:
    """The content of ``search.json``: the spec, every run's stages, the trials and the choice."""
    spec = sweep.search
    return {
        "sweep": sweep.name,
        "methods": spec.methods,  # the file's order (the mappings below may be stored sorted)
        "metric": spec.metric,
        "mode": spec.mode,
        "budget": spec.budget,
        "search_seed": spec.seed,
        "seeds": spec.seeds,
        "fixed": spec.fixed,
        "space": {m: {k: {d.kind: list(d.args)} for k, d in dists.items()} for m, dists in spec.space.items()},
        "ready": selection.ready,
        "runs": stages,  # run id -> [{stage, method, index}] (a run may serve two stages)
        "trials": {m: [vars(r) for r in rs] for m, rs in selection.trials.items()},
        "chosen": {m: {"id": r.id, "name": r.name, "index": r.index, "value": r.value,
                       "values": selection.values.get(m, {}),
                       "keys": list(selection.values.get(m, {}))} for m, r in selection.chosen.items()},
        "problems": selection.problems,
    }


# ---------------------------------------------------------------------------- the two stages


def resolve_stages(sweep, sets: list[str], folder: Path, states: dict) -> tuple[Any, Selection]:
    """Select from the trials on disk; when every trial is final, the sweep again with the
    tuned runs added (the same file and ``--set`` overrides, :func:`load_sweep` ``selected``)."""
    from harness.sweep.spec import load_sweep

    spec = sweep.search
    by_id = {r.id: r for r in sweep.runs}
    trial_runs = {m: [by_id[i] for i in sweep.groups.get((TRIAL, m), [])] for m in spec.methods}
    selection = select(spec, trial_runs, states, folder)
    if selection.ready and selection.values:
        sweep = load_sweep(sweep.file, sets, selected=selection.values)
    return sweep, selection


def stage_lines(sweep, selection: Selection) -> list[str]:
    """What ``--status`` / ``--dry-run`` say about the search: budget, the choice or what it waits for."""
    spec = sweep.search
    n_trials = sum(len(v) for (stage, _), v in sweep.groups.items() if stage == TRIAL)
    lines = [f"search: {n_trials} trials ({spec.budget} per method, random search, seed {spec.seed}); "
             f"selection by the final validation '{spec.metric}' ({spec.mode})"]
    if not selection.ready:
        lines.append(f"tuned runs: not yet listed; they follow once the {selection.waiting} trials not done or "
                     "diverged are (failed trials: rerun with --retry-failed)")
    for method, best in selection.chosen.items():
        shown = ", ".join(f"{k}={v}" for k, v in selection.values.get(method, {}).items()) or "base settings"
        lines.append(f"{'selected' if selection.ready else 'best so far'}: {method}: trial {best.index} "
                     f"({best.id}, {spec.metric}={best.value:.6g}): {shown}")
    lines += [f"search: {p}" for p in selection.problems]
    return lines


def write_record(sweep, selection: Selection, folder: Path, sets: list[str] | None = None) -> None:
    """``<results>/<sweep>/search.json`` (atomic): read by the benchmark figures and tables.
    ``sets``: the command's ``--set`` overrides, recorded so that a reduced run (e.g.
    ``--set search.budget=4``) says so in every caption drawn from it."""
    from harness.atomic import write_json

    stages: dict[str, list[dict]] = {}
    for (stage, method), ids in sweep.groups.items():
        for index, rid in enumerate(ids):
            stages.setdefault(rid, []).append({"stage": stage, "method": method, "index": index})
    record = search_record(sweep, selection, stages)
    record["overrides"] = list(sets or [])
    write_json(folder / SEARCH_FILE, record)
