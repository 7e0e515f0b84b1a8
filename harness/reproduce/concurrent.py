"""Studies at once: sweeps as subprocesses that share ``workers`` job slots (issue 17, time budget).

Run one after the other, each study ends with a core idle while its last run trains, and a
sequential batch of one or three runs leaves a core idle throughout: 19 of the 136 minutes of
the re-run of 2026-12-05. Here up to ``workers`` sweeps run at once, each with ``--workers
workers --job-slots DIR`` (:mod:`harness.sweep.job_slots`), so that together they never train
more than ``workers`` runs, and the next study fills a core the moment one frees.

A study that shares a run with an earlier one (a run's id is the hash of its config) starts only
once that study has finished, so that the run is copied (:func:`harness.reproduce.__main__.
reuse_done_runs`) instead of trained twice; ``after`` says which.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Iterator

from harness.sweep.job_slots import create_job_slots

POLL_S = 0.5


def sweep_command(file: str | Path, results: Path, workers: int, job_slots: Path) -> list[str]:
    return [sys.executable, "-m", "harness.sweep", str(file), "--workers", str(workers),
            "--results", str(results), "--job-slots", str(job_slots)]


def run_at_once(names: list[str], file_of: Callable[[str], str | Path], results: Path, workers: int,
                after: dict[str, set[str]] | None = None,
                before_start: Callable[[str], object] | None = None) -> Iterator[tuple[str, int, float, object]]:
    """Run the sweep ``file_of(name)`` of every name, up to ``workers`` at once, in the order of
    ``names`` except that a name waits until every name of ``after[name]`` has finished.
    ``before_start(name)`` runs just before a sweep starts (its value comes back with it).
    Yields ``(name, exit status, seconds, before_start's value)`` as each sweep ends."""
    after = after or {}
    pending, running, finished = list(names), {}, set()
    slots = create_job_slots(Path(tempfile.mkdtemp(prefix="moca-job-slots-")), workers)
    try:
        while pending or running:
            for name in [n for n in pending if after.get(n, set()) <= finished]:
                if len(running) >= workers:
                    break
                value = before_start(name) if before_start else None
                proc = subprocess.Popen(sweep_command(file_of(name), results, workers, slots))
                running[name] = (proc, time.monotonic(), value)
                pending.remove(name)
            ended = [n for n, (proc, _, _) in running.items() if proc.poll() is not None]
            for name in ended:
                proc, start, value = running.pop(name)
                finished.add(name)
                yield name, proc.returncode, time.monotonic() - start, value
            if not ended:
                time.sleep(POLL_S)
    except KeyboardInterrupt:  # the sweeps got the same SIGINT: let them stop their runs (they resume)
        for proc, _, _ in running.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.terminate()
        raise
    finally:
        shutil.rmtree(slots, ignore_errors=True)


def shares_runs_with(names: list[str], run_ids: dict[str, set[str]]) -> dict[str, set[str]]:
    """name -> the earlier names (in ``names``' order) whose runs it shares."""
    return {n: {o for o in names[:i] if run_ids[o] & run_ids[n]} for i, n in enumerate(names)}
