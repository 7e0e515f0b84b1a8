"""The state of each run, read from its folder (results on disk are the API, docs/design.md).

The trainer writes ``status.json`` with ``state`` = running | done | diverged | failed and the
``host`` and ``pid`` of the process (plus ``slurm_job_id`` / ``slurm_array_job_id`` /
``slurm_array_task_id`` under SLURM). The sweep engine derives one of

    pending      never started (no status.json), or failed only because its data was missing
                 (``failure: data``; the sweep checks the data before starting it again)
    queued       submitted to SLURM and waiting (or waiting to be requeued)
    running      status "running" and its process is alive
    interrupted  status "running" but its process is gone (killed, node lost, SLURM job
                 cancelled): resumable
    done, diverged, failed   as the trainer wrote them

When the process that wrote a ``running`` status was a SLURM job that has left the queue,
:func:`record_slurm_ends` asks ``sacct`` how it ended (``CANCELLED by 1000``, ``TIMEOUT``,
``OUT_OF_MEMORY``, ...) and writes ``state: interrupted`` with that ``reason`` into
``status.json``, so the record on disk no longer says ``running`` and ``--status`` can say
why; the trainer resumes such a run like any other that is not done.

A process is alive when ``host`` is this machine and ``pid`` names a live, non-zombie
process that started no later than the status was last written (so a recycled pid is not
mistaken for the run), or, on another machine, when its SLURM job is still in ``squeue``.
A ``running`` status from another machine without SLURM ids cannot be checked and is
taken as running.

The run folder itself (file names, the lock, reading status.json, local liveness) belongs to
:mod:`harness.run_folder`; this module adds what the scheduler knows. It imports no torch, so
``--status`` stays light.
"""

from __future__ import annotations

import getpass
import socket
import shutil
import subprocess
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

from harness.atomic import write_json
from harness.run_folder import (  # noqa: F401  (the run folder's names, re-exported for the sweep layer)
    CHECKPOINT, CONFIG, DIVERGED, DONE, FAILED, FINAL, INTERRUPTED, LOCK, LOG, MANIFEST, METRICS, PENDING,
    PID_SLACK_S, QUEUED, RUNNING, STATES, STATUS, local_writer_alive, pid_alive, read_json_file, read_status,
    run_lock, waits_for_data,
)

SUBMITIT_DIR, SUBMITTED = ".submitit", "jobs.json"
# sacct states of a job that has not ended (sacct(1) "JOB STATE CODES"); any other has ended
SLURM_ACTIVE = {"PENDING", "RUNNING", "REQUEUED", "RESIZING", "SUSPENDED", "COMPLETING", "CONFIGURING",
                "STAGE_OUT", "SIGNALING", "REQUEUE_FED", "REQUEUE_HOLD", "SPECIAL_EXIT", "STOPPED"}
SACCT_SETTLE_S = 10.0  # slurmdbd may record a job's end a few seconds after it left squeue


# ---------------------------------------------------------------------------- liveness


def status_job_id(status: dict) -> str | None:
    """The SLURM job id of the process that wrote ``status``, in submitit's form (``123_4``)."""
    if status.get("slurm_array_job_id") and status.get("slurm_array_task_id") is not None:
        return f"{status['slurm_array_job_id']}_{status['slurm_array_task_id']}"
    job = status.get("slurm_job_id")
    return str(job) if job else None


def slurm_active_jobs() -> set[str] | None:
    """Ids (``123`` or ``123_4``) of this user's jobs in ``squeue``; None without SLURM."""
    if shutil.which("squeue") is None:
        return None
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i"],
                             capture_output=True, text=True, timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return {line.strip() for line in out.splitlines() if line.strip()}


def slurm_end_states(job_ids: Iterable[str], settle_s: float = SACCT_SETTLE_S) -> dict[str, str]:
    """job id (``123_4`` or ``125``) -> how it ended according to ``sacct`` (``CANCELLED by 0``,
    ``TIMEOUT``, ``FAILED``, ``COMPLETED``, ...), for the jobs among ``job_ids`` that have ended.

    Only asked about jobs that already left ``squeue``; as slurmdbd may record the end a little
    later, while sacct still lists one of them as active it is asked again, for up to
    ``settle_s`` seconds; a job still active then, or unknown to sacct (purged), is left out.
    Empty without sacct or accounting.
    """
    wanted = sorted(set(job_ids))
    if not wanted or shutil.which("sacct") is None:
        return {}
    deadline = time.monotonic() + settle_s
    while True:
        try:
            out = subprocess.run(["sacct", "-n", "-P", "-X", "-o", "JobID,State", "-j", ",".join(wanted)],
                                 capture_output=True, text=True, timeout=60, check=True).stdout
        except (OSError, subprocess.SubprocessError):
            return {}
        ended, active = {}, False
        for line in out.splitlines():
            job, _, state = line.strip().partition("|")
            if job in wanted and state.strip():
                if state.split()[0] in SLURM_ACTIVE:
                    active = True
                else:
                    ended[job] = state.strip()
        if not active or time.monotonic() >= deadline:
            return ended
        time.sleep(0.5)


def process_alive(status: dict, active_jobs: set[str] | None) -> bool | None:
    """True / False when the writer of a ``running`` status can be checked, else None."""
    local = local_writer_alive(status)
    if local is not None:
        return local
    job = status_job_id(status)
    if job and active_jobs is not None:
        return job in active_jobs
    return None


# ---------------------------------------------------------------------------- states


def run_state(run_dir: Path, active_jobs: set[str] | None = None, submitted_job: str | None = None,
              status: dict | None = None) -> str:
    """The derived state of one run folder (see the module docstring)."""
    status = status if status is not None else read_status(run_dir)
    state = status.get("state") if status else None
    if state in FINAL:
        return state
    queued = bool(submitted_job and active_jobs is not None and submitted_job in active_jobs)
    if state == RUNNING:
        alive = process_alive(status, active_jobs)
        if alive is None or alive:
            return RUNNING
        return QUEUED if queued else INTERRUPTED
    if state == INTERRUPTED:  # written by record_slurm_ends
        return QUEUED if queued else INTERRUPTED
    if queued:
        return QUEUED
    return FAILED if state == FAILED and not waits_for_data(status) else PENDING


def read_submitted(sweep_folder: Path) -> dict[str, str]:
    """run id -> SLURM job id of the latest submission of each run (``.submitit/jobs.json``)."""
    data = read_json_file(sweep_folder / SUBMITIT_DIR / SUBMITTED)
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def sweep_states(sweep_folder: Path, run_ids: list[str]) -> dict[str, tuple[str, dict | None]]:
    """run id -> (state, status.json or None) for the runs of one sweep folder."""
    statuses = {rid: read_status(sweep_folder / rid) for rid in run_ids}
    submitted = read_submitted(sweep_folder)
    needs_queue = bool(submitted) or any(
        s and s.get("state") == RUNNING and s.get("host") != socket.gethostname() and status_job_id(s)
        for s in statuses.values())
    active = slurm_active_jobs() if needs_queue else None
    return {rid: (run_state(sweep_folder / rid, active, submitted.get(rid), statuses[rid]), statuses[rid])
            for rid in run_ids}


def record_slurm_ends(sweep_folder: Path, states: dict[str, tuple[str, dict | None]],
                      ended: dict[str, str] | None = None) -> dict[str, tuple[str, dict | None]]:
    """Record in ``status.json`` how the SLURM job of each ``interrupted`` run ended.

    For each run of ``states`` (run id -> (state, status), as from :func:`sweep_states`)
    that is ``interrupted`` while its status.json still says ``running`` and names a SLURM
    job, sacct is asked how that job ended (``ended``, job id -> sacct state, when the
    caller already knows), and ``state: interrupted``, ``reason: slurm job 12_3 CANCELLED
    by 0`` are written -- holding the run lock, and only if the status read again under it
    is still the one of that job, so a job that has started training the run meanwhile is
    never overwritten. Returns ``states`` with the statuses written.
    """
    candidates = {rid: status_job_id(status) for rid, (state, status) in states.items()
                  if state == INTERRUPTED and status and status.get("state") == RUNNING and status_job_id(status)}
    if not candidates:
        return states
    known = dict(ended or {})
    missing = [job for job in candidates.values() if job not in known]
    known.update(slurm_end_states(missing) if missing else {})
    states = dict(states)
    for rid, job in candidates.items():
        if job not in known:
            continue
        run_dir = Path(sweep_folder) / rid
        with run_lock(run_dir) as held:
            status = read_status(run_dir) if held else None
            if status is None or status.get("state") != RUNNING or status_job_id(status) != job:
                continue
            status.update(state=INTERRUPTED, reason=f"slurm job {job} {known[job]}",
                          updated_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            write_json(run_dir / STATUS, status)
        states[rid] = (INTERRUPTED, status)
    return states
