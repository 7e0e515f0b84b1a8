"""Aggregate a sweep's run folders into two tables.

    python -m harness.collect <sweep name or folder> [--results DIR]

writes, atomically, into ``results/<sweep>/``:

* ``runs.csv``: one row per run of the sweep: ``id``, ``name``, one column per varied key
  (dotted, e.g. ``method.tau``), ``status`` (pending / running / interrupted / done /
  diverged / failed as the run folder records it, see :func:`harness.run_folder.disk_state`;
  ``unreadable`` when its status.json cannot be read), ``epochs`` (the last epoch logged),
  ``wall_time_s``, ``in_sweep`` (whether the run belongs to the sweep's latest expansion),
  ``warning`` (the run's health warnings, :mod:`harness.health`), ``problems`` (what is broken in the folder, empty when nothing),
  the unit of the values measured in a feature space: ``<group>_features`` (e.g.
  ``fid_features`` = ``lenet-128`` or ``inception-2048``) and ``<group>_features_sha256`` (the
  network's weights) for each provenance file of the run that names one
  (:func:`harness.run_folder.feature_spaces`; ``fid`` stays the metric's key),
  ``reason`` (why a run failed or diverged, or how SLURM ended it: type and message), then the
  final metrics (the last readable line of ``metrics.jsonl``);
* ``curves.csv``: one row per run and logged epoch: ``id``, ``name``, the varied keys,
  ``epoch`` and every metric logged that epoch (epoch 0 = evaluation at initialisation).

The runs and their varied values come from the ``sweep.json`` manifest written by the sweep
engine, which lists the latest expansion only; every other run folder in the sweep folder
(e.g. from an earlier invocation with another ``--set``) is collected too, with ``in_sweep``
false and its varied values read from its ``config.json``, so rerunning a sweep differently
never hides results that are on disk. Only the disk is read (no scheduler is asked: a run
queued in SLURM is ``pending`` here; ``python -m harness.sweep --status`` asks the queue).
Every run gets a row, however broken its folder: what cannot be read (corrupt JSON, metric
lines cut off, unreadable or missing in the middle) is reported on stderr, one line per file,
and in the ``problems`` column, and the readable rest is used; it never stops the collection.

Python API: :func:`collect` returns the two tables as pandas DataFrames.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from harness.atomic import write_text_if_changed
from harness.errors import CommandLine
from harness.run_folder import (
    CONFIG, DIVERGED, FAILED, INTERRUPTED, MANIFEST, METRICS, PENDING, RUN_ID_RE, STATUS, PathEscape, describe_os_error,
    disk_state, feature_spaces,
    read_config_tree, read_json_file, read_metrics, read_status, run_dir, sweep_dir,
)
from harness.dotted import lookup
from harness.naming import run_name

RUNS_CSV, CURVES_CSV = "runs.csv", "curves.csv"
RUN_COLUMNS = ["id", "name"]
STATE_COLUMNS = ["status", "epochs", "wall_time_s", "in_sweep", "warning", "problems", "reason"]
UNREADABLE = "unreadable"  # status.json exists but cannot be read


class CollectError(ValueError):
    """The sweep cannot be collected at all (no manifest); one line, exit status 2."""


def _warn(line: str) -> None:
    print(line, file=sys.stderr)


def sweep_folder(sweep: str | Path, results: str | Path = "results") -> Path:
    """A sweep folder given as a path (holding sweep.json) or as a name under ``results``."""
    path = Path(sweep)
    if (path / MANIFEST).is_file():
        return path
    try:
        return sweep_dir(results, str(sweep))
    except PathEscape as e:
        raise CollectError(str(e)) from None


def _cell(value: Any) -> Any:
    """Lists and mappings become JSON text so that a CSV cell holds one readable value."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def read_run(folder: Path) -> tuple[str, dict | None, list[dict], list[str]]:
    """(state, status.json or None, readable metric rows, problems) of one run folder.

    Reads the disk only. Problems are one short phrase each, naming the file: an unreadable
    status.json (state ``unreadable``) or config.json, metric lines cut off, unreadable or
    missing (also lines missing after the last one, when status.json says more epochs ran).
    """
    problems: list[str] = []
    status = read_status(folder)
    if status is None and (folder / STATUS).exists():
        state = UNREADABLE
        problems.append(f"{folder / STATUS}: not a readable JSON object")
    else:
        state = disk_state(status) if folder.exists() else PENDING
    if folder.exists() and (folder / STATUS).exists() and read_config_tree(folder) is None:
        problems.append(f"{folder / CONFIG}: missing or not a readable JSON object")
    metrics = read_metrics(folder / METRICS)
    rows = metrics.rows
    lost = metrics.problems
    logged = rows[-1]["epoch"] if rows else 0
    recorded = (status or {}).get("epoch")
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > logged:
        n = recorded - logged
        lost.append(f"{n} epoch{'s' if n > 1 else ''} after epoch {logged} missing (status.json says {recorded})")
    if lost:
        problems.append(f"{folder / METRICS}: {'; '.join(lost)}")
    return state, status, rows, problems


def earlier_runs(folder: Path, current: set[str], varied_keys: list[str], name_keys: list[str],
                 warn: Callable[[str], None]) -> list[tuple[dict, Path]]:
    """Run folders on disk that the manifest does not list (an earlier expansion of the
    sweep), as manifest-like entries whose varied values come from their config.json."""
    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_dir() and RUN_ID_RE.match(p.name)):
        if path.name in current or not (path / CONFIG).exists():
            continue
        config = read_json_file(path / CONFIG)
        if not isinstance(config, dict):
            warn(f"{path / CONFIG}: not a readable JSON object; run skipped")
            continue
        varied = {}
        for key in varied_keys:
            found, value = lookup(config, key)
            if found:
                varied[key] = value
        out.append(({"id": path.name, "name": run_name(varied, name_keys), "varied": varied}, path))
    return out


def _renamed(key: str, taken: set[str]) -> str:
    return f"metric_{key}" if key in taken else key


def collect(sweep: str | Path, results: str | Path = "results",
            warn: Callable[[str], None] = _warn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(runs, curves) DataFrames of a sweep (see the module docstring for the columns)."""
    folder = sweep_folder(sweep, results)
    manifest = read_json_file(folder / MANIFEST)
    if not isinstance(manifest, dict) or not isinstance(manifest.get("runs"), list):
        raise CollectError(f"{folder / MANIFEST}: missing or unreadable (run the sweep first)")
    varied_keys = [k for k in manifest.get("varied_keys", []) if isinstance(k, str)]
    name_keys = [k for k in manifest.get("name_keys", varied_keys) if isinstance(k, str)]
    entries = []
    for entry in manifest["runs"]:
        try:
            entries.append((entry, run_dir(folder, entry.get("id") if isinstance(entry, dict) else None)))
        except PathEscape as e:
            warn(f"{folder / MANIFEST}: {e}; skipped")
    current = {e["id"] for e, _ in entries}
    entries += earlier_runs(folder, current, varied_keys, name_keys, warn)

    fixed = set(RUN_COLUMNS) | set(STATE_COLUMNS) | set(varied_keys)
    run_rows, curve_rows, final_keys, curve_keys, unit_keys = [], [], [], [], []
    for entry, path in entries:
        varied = entry.get("varied") if isinstance(entry.get("varied"), dict) else {}
        head = {"id": entry["id"], "name": entry.get("name", ""),
                **{k: _cell(varied.get(k)) for k in varied_keys}}
        try:
            state, status, metrics, problems = read_run(path)
        except OSError as e:
            state, status, metrics, problems = UNREADABLE, None, [], [describe_os_error(e, path)]
        for line in problems:
            warn(line)
        warnings = (status or {}).get("warnings")
        row = dict(head, status=state, epochs=metrics[-1]["epoch"] if metrics else 0,
                   wall_time_s=(status or {}).get("wall_time_s"), in_sweep=entry["id"] in current,
                   warning="; ".join(map(str, warnings)) if isinstance(warnings, list) else "",
                   problems="; ".join(problems) if problems else None,
                   reason=(status or {}).get("reason") if state in (FAILED, DIVERGED, INTERRUPTED) else None)
        for group, (_, space) in feature_spaces(path).items():
            units = {f"{group}_features": space.label, f"{group}_features_sha256": space.weights_sha256}
            row.update(units)
            unit_keys += [k for k in units if k not in unit_keys]
        for key, value in (metrics[-1] if metrics else {}).items():
            if key != "epoch":
                col = _renamed(key, fixed)
                row[col] = value
                if col not in final_keys:
                    final_keys.append(col)
        run_rows.append(row)
        for line in metrics:
            crow = dict(head)
            for key, value in line.items():
                col = key if key == "epoch" else _renamed(key, fixed | {"epoch"})
                crow[col] = value
                if col != "epoch" and col not in curve_keys:
                    curve_keys.append(col)
            curve_rows.append(crow)

    runs = pd.DataFrame(run_rows, columns=[*RUN_COLUMNS, *varied_keys, *STATE_COLUMNS, *unit_keys, *final_keys])
    curves = pd.DataFrame(curve_rows, columns=[*RUN_COLUMNS, *varied_keys, "epoch", *curve_keys])
    return runs, curves


def write_collection(sweep: str | Path, results: str | Path = "results",
                     warn: Callable[[str], None] = _warn) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Collect and write runs.csv and curves.csv (atomically) into the sweep folder."""
    runs, curves = collect(sweep, results, warn)
    folder = sweep_folder(sweep, results)
    write_text_if_changed(folder / RUNS_CSV, runs.to_csv(index=False))  # a rerun changing nothing writes nothing
    write_text_if_changed(folder / CURVES_CSV, curves.to_csv(index=False))
    return runs, curves


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(prog="python -m harness.collect", description=__doc__.split("\n\n")[0])
    parser.add_argument("sweep", help="sweep name (a folder under --results) or a sweep folder")
    parser.add_argument("--results", default="results", help="results root (default: results)")
    args = parser.parse_args(argv)
    try:
        runs, curves = write_collection(args.sweep, args.results)
    except CollectError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    folder = sweep_folder(args.sweep, args.results)
    counts = runs["status"].value_counts().to_dict() if len(runs) else {}
    print(f"{folder / RUNS_CSV}: {len(runs)} runs ({', '.join(f'{n} {s}' for s, n in counts.items())}); "
          f"{folder / CURVES_CSV}: {len(curves)} rows")
    return 0


if __name__ == "__main__":
    sys.exit(main())
