"""Reading one sweep's results for the figures: runs, curves, run configs, and what is wrong.

A sweep's results live in ``<results>/<sweep>/`` (docs/design.md, docs/sweeps.md). Two
sources, in this order:

1. the run folders themselves, through :func:`harness.collect.collect` (always current),
   when at least one run folder of the ``sweep.json`` manifest exists;
2. ``runs.csv`` / ``curves.csv`` written by ``python -m harness.collect`` (what a clone of the
   repository holds: run folders are not committed, see .gitignore).

Each run's resolved config comes from its ``config.json`` (never from re-expanding a sweep
file, which may have changed since); a run without a readable one has no config, and the
captions say so. The configs supply the keys the sweep did not vary (dataset, architecture, metric modes), from
which captions state the scale and the measurement settings.

Nothing here invents a value: a run without a config, a corrupt run folder or a missing file
is recorded in :attr:`SweepResults.problems`, and plotting code only sees runs whose status is
``done``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from harness.collect import CURVES_CSV, RUNS_CSV, CollectError, collect
from harness.dotted import flatten
from harness.run_folder import (
    DONE, MANIFEST, FeatureSpace, PathEscape, feature_space, read_config_tree, read_json_file, run_dir, sweep_dir,
)

STATE_COLUMNS = ("status", "epochs", "wall_time_s", "problems")


class ResultsUnreadable(ValueError):
    """A sweep folder exists but holds nothing that can be read (one line, says why)."""


class ItemDataError(ValueError):
    """The results are there but cannot make this item (e.g. a metric was not logged)."""


def flat_config(tree: Any) -> dict[str, Any]:
    """A run's config as dotted keys; lists become JSON text, as in runs.csv cells."""
    return {k: json.dumps(v) if isinstance(v, list) else v for k, v in flatten(tree).items()}


def with_per_run(runs: pd.DataFrame, metric: str, per_run: pd.Series) -> pd.DataFrame:
    """A copy of ``runs`` with ``metric`` replaced by ``per_run`` (run id -> value; NaN where a run has none)."""
    out = runs.copy()
    out[metric] = out["id"].map(per_run).astype(float)
    return out


def read_at_threshold(runs: pd.DataFrame, curves: pd.DataFrame, metric: str, on: str,
                      threshold: float) -> pd.DataFrame:
    """``runs`` with ``metric`` read at each run's first evaluation after the start at which
    ``on`` is at or below ``threshold`` (NaN when the run never reached it), and that epoch in
    ``threshold_epoch``: the paper's protocol of Fig. 4, "trained until the reconstruction error
    reaches 50" (§4.2), read from the logged curves of runs that trained longer."""
    if curves.empty or on not in curves.columns or metric not in curves.columns:
        return runs.assign(**{metric: float("nan"), "threshold_epoch": float("nan")})
    reached = curves[(curves[on] <= threshold) & curves[metric].notna() & (curves["epoch"] > 0)]
    first = reached.sort_values("epoch").groupby("id").first()
    return with_per_run(with_per_run(runs, metric, first[metric]), "threshold_epoch", first["epoch"])


@dataclass
class SweepResults:
    """What one sweep folder holds, with a flat config column for every config key."""

    name: str
    folder: Path
    source: str  # "run folders" or "runs.csv"
    varied_keys: list[str]
    runs: pd.DataFrame  # every run, any status
    curves: pd.DataFrame  # every logged epoch of every run
    configs: dict[str, dict[str, Any]]  # run id -> flat resolved config
    problems: list[str] = field(default_factory=list)
    _spaces: dict[str, dict] = field(default_factory=dict, repr=False)  # feature_spaces, by metric

    @property
    def done_runs(self) -> pd.DataFrame:
        return self.runs[self.runs["status"] == DONE].reset_index(drop=True)

    @property
    def done_curves(self) -> pd.DataFrame:
        ids = set(self.done_runs["id"])
        return self.curves[self.curves["id"].isin(ids)].reset_index(drop=True)

    def status_counts(self) -> dict[str, int]:
        return {str(k): int(v) for k, v in self.runs["status"].value_counts().items()}

    def run_folder(self, rid: str) -> Path | None:
        """The folder of run ``rid`` when it exists on disk (artifacts live there)."""
        try:
            path = run_dir(self.folder, rid)
        except PathEscape:
            return None
        return path if path.is_dir() else None

    def feature_spaces(self, metric: str) -> dict[str, FeatureSpace]:
        """Run id -> the feature space the done run measured ``metric`` in: from each run
        folder's provenance files, else from runs.csv's ``<metric>_features`` columns; empty
        when the metric is not measured in a feature space (or nothing records one)."""
        if metric in self._spaces:
            return self._spaces[metric]
        out = self._spaces[metric] = {}
        col, sha = f"{metric}_features", f"{metric}_features_sha256"
        for _, row in self.done_runs.iterrows():
            folder = self.run_folder(row["id"])
            space = feature_space(folder, metric) if folder is not None else None
            if space is None and isinstance(row.get(col), str) and isinstance(row.get(sha), str):
                space = FeatureSpace(row[col], row[sha])
            if space is not None:
                out[row["id"]] = space
        return out

    def done_configs(self) -> list[dict[str, Any]]:
        return [self.configs[rid] for rid in self.done_runs["id"] if rid in self.configs]


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except (OSError, ValueError) as e:  # pandas' ParserError / EmptyDataError are ValueErrors
        raise ResultsUnreadable(f"{path}: cannot be read as CSV ({str(e).splitlines()[0] if str(e) else type(e).__name__})") from None


def _varied_from_csv(runs: pd.DataFrame) -> list[str]:
    cols = list(runs.columns)
    if "name" in cols and "status" in cols and cols.index("name") < cols.index("status"):
        return cols[cols.index("name") + 1: cols.index("status")]
    return []


def _attach_configs(df: pd.DataFrame, configs: dict[str, dict]) -> pd.DataFrame:
    """Add one column per config key that ``df`` lacks (varied keys are already there)."""
    if df.empty or not configs:
        return df
    keys: list[str] = []
    for flat in configs.values():
        keys.extend(k for k in flat if k not in keys and k not in df.columns)
    if not keys:
        return df
    extra = pd.DataFrame([{"id": rid, **{k: flat.get(k) for k in keys}} for rid, flat in configs.items()])
    return df.merge(extra, on="id", how="left")


def load_sweep_results(results: str | Path, name: str) -> SweepResults | None:
    """The results of sweep ``name`` under ``results``; None when there are none at all.

    Raises
    :class:`ResultsUnreadable` when the folder exists but nothing in it can be read.
    """
    try:
        folder = sweep_dir(results, name)
    except PathEscape as e:
        raise ResultsUnreadable(str(e)) from None
    if not folder.is_dir():
        return None
    problems: list[str] = []
    manifest = read_json_file(folder / MANIFEST)
    manifest = manifest if isinstance(manifest, dict) and isinstance(manifest.get("runs"), list) else None
    if (folder / MANIFEST).exists() and manifest is None:
        problems.append(f"{folder / MANIFEST}: unreadable or not a sweep manifest")
    ids_in_manifest = [e.get("id") for e in (manifest or {}).get("runs", []) if isinstance(e, dict)]
    has_run_folders = any(isinstance(i, str) and (folder / i).is_dir() for i in ids_in_manifest)
    has_csv = (folder / RUNS_CSV).is_file()

    if manifest is not None and (has_run_folders or not has_csv):
        try:
            runs, curves = collect(folder, warn=problems.append)
        except CollectError as e:
            raise ResultsUnreadable(str(e)) from None
        source = "run folders"
        varied = [k for k in manifest.get("varied_keys", []) if isinstance(k, str)]
    elif has_csv:
        runs = _read_csv(folder / RUNS_CSV)
        if (folder / CURVES_CSV).is_file():
            curves = _read_csv(folder / CURVES_CSV)
        else:
            problems.append(f"{folder / CURVES_CSV}: missing (per-epoch curves unavailable)")
            curves = pd.DataFrame(columns=["id", "epoch"])
        source = "runs.csv"
        for col in ("id", "status"):
            if col not in runs.columns:
                raise ResultsUnreadable(f"{folder / RUNS_CSV}: no '{col}' column (not written by harness.collect?)")
        varied = ([k for k in manifest.get("varied_keys", []) if isinstance(k, str)] if manifest
                  else _varied_from_csv(runs))
    else:
        raise ResultsUnreadable(f"{folder}: neither a readable {MANIFEST} nor {RUNS_CSV}")
    runs["id"] = runs["id"].astype(str)
    if "id" in curves.columns:
        curves["id"] = curves["id"].astype(str)
    if "in_sweep" in runs.columns:  # runs of an earlier expansion (another --set) are not the sweep's
        keep = runs["in_sweep"].astype(str).str.lower().isin(["true", "1"])
        runs = runs[keep].reset_index(drop=True)
        if "id" in curves.columns:
            curves = curves[curves["id"].isin(set(runs["id"]))].reset_index(drop=True)

    configs: dict[str, dict] = {}
    for rid in runs["id"]:
        try:
            tree = read_config_tree(run_dir(folder, rid))
        except PathEscape:
            tree = None
        if tree is not None:
            configs[rid] = flat_config(tree)
    done_lacking = (set(runs["id"]) - set(configs)) & set(runs.loc[runs["status"] == DONE, "id"])
    if done_lacking:
        problems.append(f"{len(done_lacking)} done runs have no readable config.json")
    runs = _attach_configs(runs, configs)
    curves = _attach_configs(curves, configs)
    return SweepResults(name, folder, source, varied, runs, curves, configs, problems)
