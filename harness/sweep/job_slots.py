"""Run slots shared by sweeps that run at the same time (``--job-slots DIR``), like make's jobserver.

``python -m harness.reproduce`` runs studies that share no run at the same time, so that the
last run of one study, or a sequential batch of one or two runs, does not leave a core idle
(measured on the re-run of 2026-12-05: a core stood idle for 19 of its 136 minutes). Each sweep
keeps its own ``--workers`` limit; in addition a local run starts only while its sweep holds one
of the folder's slot files (``slot-0``, ``slot-1``, ...: an exclusive, non-blocking ``flock``),
so all the sweeps together train at most as many runs as the folder has slots. The lock belongs
to the open file, so a sweep that is killed frees its slots with it; nothing is left to clean up.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

PREFIX = "slot-"


def create_job_slots(folder: str | Path, n: int) -> Path:
    """Make ``folder`` hold exactly ``n`` slot files (``slot-0`` ... ``slot-<n-1>``); returns it."""
    if n < 1:
        raise ValueError(f"job slots: got {n}; allowed: an integer >= 1")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for extra in folder.glob(f"{PREFIX}*"):
        if extra.name not in {f"{PREFIX}{i}" for i in range(n)}:
            extra.unlink()
    for i in range(n):
        (folder / f"{PREFIX}{i}").touch()
    return folder


class JobSlots:
    """The slot files of ``folder`` (made by :func:`create_job_slots`)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self.files = sorted(self.folder.glob(f"{PREFIX}*")) if self.folder.is_dir() else []
        if not self.files:
            raise ValueError(f"--job-slots {folder}: no slot files ({PREFIX}0, ...) in it; "
                             "allowed: a folder made by harness.sweep.job_slots.create_job_slots")

    def __len__(self) -> int:
        return len(self.files)

    def acquire(self) -> int | None:
        """Hold a free slot: returns its open file descriptor, or None when all are held."""
        for path in self.files:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                os.close(fd)
        return None

    @staticmethod
    def release(fd: int) -> None:
        """Give the slot back (closing the file drops its lock)."""
        os.close(fd)
