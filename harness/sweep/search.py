"""Selection of a searched sweep: the best trial of each method, read from the run folders.

The search section itself (distributions, draws, the runs of each stage) is
:mod:`harness.sweep.space`; this module reads what the trials logged, chooses (the best final
``select.metric`` on the validation split; ties: the earlier draw; diverged trials and trials
without the metric never win), records the choice in ``<results>/<sweep>/search.json`` and
expands the sweep again with the tuned runs (:func:`resolve_stages`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.atomic import json_text, write_text_if_changed
from harness.run_folder import DIVERGED, DONE, FINAL, METRICS, SEARCH_FILE, TRIAL, run_dir
from harness.sweep.space import SearchSpec
from harness.sweep.spec import load_sweep


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
    stages: dict[str, list[dict]] = {}
    for (stage, method), ids in sweep.groups.items():
        for index, rid in enumerate(ids):
            stages.setdefault(rid, []).append({"stage": stage, "method": method, "index": index})
    record = search_record(sweep, selection, stages)
    record["overrides"] = list(sets or [])
    write_text_if_changed(folder / SEARCH_FILE, json_text(record))
