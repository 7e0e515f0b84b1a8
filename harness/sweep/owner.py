"""One sweep definition at a time per sweep folder.

Two sweeps with the same ``name`` share ``results/<name>/``; if they expand to different runs
(another file, other ``--set`` overrides) and run at the same time, ``sweep.json`` is whoever
wrote last and the other's runs disappear from the report. So a sweep that starts runs holds
an exclusive lock on ``results/<name>/.lock`` (git-ignored, like a run's) for as long as it
runs, with its definition written in the file; a second sweep of another definition is then
refused in one line (exit 4, like a second ``harness.train`` on a busy run folder). A second
sweep of the *same* definition is let through without the lock: it has the same runs, and each
run's own lock keeps them from being trained twice. The kernel drops the lock when the holder
dies, however it dies, so a killed sweep never blocks the folder.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from harness.run_folder import folder_lock

EXIT_BUSY = 4


class FolderBusy(RuntimeError):
    """Another sweep definition is running in this sweep folder; ``str(err)`` is one line."""


def definition(sweep, sets: list[str]) -> dict:
    """What identifies a sweep's definition: the hash of its run ids (as first expanded; a
    search's tuned runs follow from its trials), with the file and overrides for the message."""
    key = hashlib.sha256("\n".join(sorted(r.id for r in sweep.runs)).encode()).hexdigest()[:16]
    return {"key": key, "sweep_file": str(sweep.file), "sets": list(sets), "pid": os.getpid(),
            "host": socket.gethostname()}


def _describe(owner: dict | None) -> str:
    if not owner:
        return "a sweep whose definition could not be read"
    sets = "".join(f" --set {s}" for s in owner.get("sets") or [])
    return f"{owner.get('sweep_file')}{sets} (pid {owner.get('pid')} on {owner.get('host')})"


@contextmanager
def own_folder(folder: Path, sweep, sets: list[str]) -> Iterator[None]:
    """Hold ``folder`` for ``sweep`` while the block runs; raise :class:`FolderBusy` when a
    sweep of another definition holds it."""
    mine = definition(sweep, sets)
    with folder_lock(folder) as (fd, held):
        if held:
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(mine).encode(), 0)
            yield
            return
        try:
            owner = json.loads(os.pread(fd, 1 << 16, 0).decode())
        except (ValueError, UnicodeDecodeError):
            owner = None
        if not isinstance(owner, dict) or owner.get("key") != mine["key"]:
            raise FolderBusy(f"{folder}: another definition of sweep '{sweep.name}' is running there: "
                             f"{_describe(owner if isinstance(owner, dict) else None)}; allowed: one "
                             "definition at a time (wait for it to end, or give this sweep another name)")
        yield  # the same runs: their own locks keep each from being trained twice
