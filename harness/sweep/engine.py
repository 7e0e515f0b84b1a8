"""Planning and bookkeeping of a sweep: which runs to start, the manifest, tables, summary.

Skip and resume (docs/sweeps.md): ``done`` and ``diverged`` runs are final and never rerun (a
divergence is a result of the config: the same config and seed diverge again); ``running``
and ``queued`` runs belong to another live process or job and are left alone; ``pending``
and ``interrupted`` runs are started, and resume from their checkpoint when they have one;
``failed`` runs are rerun (resuming too) only with ``--retry-failed``.

Nothing is written before the whole sweep has been validated. Then ``sweep.json`` (the
manifest that :mod:`harness.collect` reads) is written at the sweep root, and each run to
start gets its ``config.json`` in ``results/<sweep>/<run id>/`` if it has none; a folder
whose ``config.json`` holds another config is an error (exit 2) before anything is written.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

from harness.atomic import json_text, write_json
from harness.run_folder import DIVERGED, same_config
from harness.sweep.executors import Launch
from harness.sweep.identity import PathEscape, format_value, run_dir, short_labels
from harness.sweep.spec import Sweep, SweepError
from harness.sweep.state import (
    CONFIG, FAILED, FINAL, INTERRUPTED, MANIFEST, PENDING, STATES, read_json_file, record_slurm_ends,
    sweep_states,
)


def current_states(sweep: Sweep, folder: Path) -> dict[str, tuple[str, dict | None]]:
    """run id -> (state, status.json); a run whose SLURM job ended without the trainer
    finishing (``scancel``, node failure, time-out) gets sacct's word for it recorded as the
    ``reason`` of an ``interrupted`` status (:func:`harness.sweep.state.record_slurm_ends`)."""
    ids = [r.id for r in sweep.runs]
    if not folder.exists():
        return {rid: (PENDING, None) for rid in ids}
    return record_slurm_ends(folder, sweep_states(folder, ids))


def plan(sweep: Sweep, states: dict[str, tuple[str, dict | None]], retry_failed: bool) -> list:
    """The runs to start now (see the module docstring for the rules)."""
    startable = {PENDING, INTERRUPTED} | ({FAILED} if retry_failed else set())
    return [run for run in sweep.runs if states[run.id][0] in startable]


def check_folders(sweep: Sweep, folder: Path) -> None:
    """Refuse to reuse a run folder whose config.json holds a different config (the same
    check as ``harness.train``'s: :func:`harness.run_folder.same_config`). A config.json that
    cannot be read at all is left to the run, which rewrites it (its folder name is the
    config's hash, so the folder's run is known). A run folder that resolves outside the sweep
    folder (a symlink out) is refused too."""
    for run in sweep.runs:
        try:
            path = run_dir(folder, run.id) / CONFIG
        except PathEscape as e:  # e.g. a run folder that is a link out of the sweep folder
            raise SweepError(f"{e}; allowed: a run folder inside the sweep folder (remove the link)") from None
        if not path.exists():
            continue
        stored = read_json_file(path)
        if stored is None:
            continue
        if not same_config(stored, run.config):
            raise SweepError(f"{path}: holds another config than run '{run.name}' (id {run.id}); "
                             "allowed: the run's own config (move or delete that folder)")


def _derived_here(sweep_file: str, folder: Path) -> bool:
    """A sweep file kept in the results folder itself is one derived from the folder's own
    study (``make reproduce --sequential`` writes ``results/<study>/sequential.yaml``): taking
    turns with the study's sweep there is expected, not a second sweep writing into the folder."""
    return Path(sweep_file).resolve().parent == Path(folder).resolve()


def write_manifest(sweep: Sweep, folder: Path) -> None:
    """``sweep.json``: the sweep's name and file, the varied keys and every run's values;
    left as it is (``updated_at`` included) when nothing else in it changes, so rerunning a
    finished sweep writes nothing."""
    old = read_json_file(folder / MANIFEST)
    if isinstance(old, dict) and old.get("sweep_file") not in (None, sweep.file) \
            and not _derived_here(old["sweep_file"], folder) and not _derived_here(sweep.file, folder):
        print(f"warning: {folder} was last written by {old['sweep_file']}, now by {sweep.file}", file=sys.stderr)
    manifest = {
        "name": sweep.name,
        "sweep_file": sweep.file,
        "description": sweep.description,
        "name_keys": sweep.name_keys,
        "varied_keys": sweep.varied_keys,
        "runs": [{"id": r.id, "name": r.name, "varied": r.varied} for r in sweep.runs],
    }
    if isinstance(old, dict) and json_text({k: v for k, v in old.items() if k != "updated_at"}) == json_text(manifest):
        return
    write_json(folder / MANIFEST, {**manifest, "updated_at": datetime.now(timezone.utc).isoformat(timespec="seconds")})


def prepare(sweep: Sweep, folder: Path, runs: list, lazy: bool = False) -> list[Launch]:
    """Write the manifest and the config.json of each run to start; return the launches.

    ``lazy`` (the local executor): leave each config.json to :meth:`Launch.materialize`,
    called as the run starts; writing 10,000 folders up front takes minutes (one fsync each)."""
    write_manifest(sweep, folder)
    launches = [Launch(run, run_dir(folder, run.id)) for run in runs]
    if not lazy:
        for launch in launches:
            launch.materialize()
    return launches


# ---------------------------------------------------------------------------- reports


def _epoch_text(run, status: dict | None) -> str:
    total = run.config.train.epochs
    done = (status or {}).get("epoch")
    return f"{done}/{total}" if isinstance(done, int) else f"-/{total}"


def print_table(sweep: Sweep, states: dict, out: TextIO | None = None) -> None:
    """One line per run: id, state, epochs done, and the varied values."""
    out = out or sys.stdout
    labels = short_labels(sweep.varied_keys)
    header = ["id", "state", "epoch", *(labels[k] for k in sweep.varied_keys)]
    rows = [[run.id, states[run.id][0], _epoch_text(run, states[run.id][1]),
             *(format_value(run.varied[k]) if k in run.varied else "-" for k in sweep.varied_keys)]
            for run in sweep.runs]
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip(), file=out)


def print_reasons(sweep: Sweep, states: dict, out: TextIO | None = None) -> None:
    """One line per ``interrupted``, ``failed`` or ``diverged`` run that has a reason in its
    status.json (the exception of a failed run, type and message; the step and loss terms of
    a divergence; how SLURM ended the job of an interrupted one)."""
    out = out or sys.stdout
    for run in sweep.runs:
        state, status = states[run.id]
        reason = str((status or {}).get("reason") or "").strip()
        if state in (INTERRUPTED, FAILED, DIVERGED) and reason:
            print(f"{run.id} {run.name}: {state}: {reason.splitlines()[0]}", file=out)


def summary(sweep: Sweep, states: dict) -> str:
    counts = {s: 0 for s in STATES}
    for state, _ in states.values():
        counts[state] += 1
    parts = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    return f"{sweep.name}: {len(sweep.runs)} runs: {parts}"


def all_final(states: dict) -> bool:
    return all(state in FINAL for state, _ in states.values())
