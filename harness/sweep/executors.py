"""Executors: how the runs of a sweep are started (docs/sweeps.md "Executors").

* ``local``: one worker process per run, at most N at a time, on this machine (no daemon).
  On a GPU machine each run gets one GPU slot (``CUDA_VISIBLE_DEVICES``), ``workers_per_gpu``
  slots per GPU, so several small runs share a GPU.
  Processes come from a ``forkserver`` that has already imported torch and the harness, so a
  run starts in milliseconds, and each run is its own process: a crash or a SIGKILL ends that
  run only (a ``ProcessPoolExecutor`` would break as a whole when one worker dies).
* ``slurm``: submitit job arrays, one array job per run, with the resources of the sweep's
  ``slurm:`` block; arrays larger than the cluster's ``MaxArraySize`` are split. With
  ``slurm.runs_per_task: N`` an array job trains N runs at once (sharing its GPUs,
  :class:`~harness.sweep.jobs.RunGroupJob`); with ``slurm.tasks_per_run: N`` one run spans
  the N tasks of its job (DDP).
* ``debug``: submitit's ``DebugExecutor``, every run in this process one after the other
  (a failing run opens the debugger, which is the point of it).

Every executor implements :class:`Executor` (one method, ``run(launches, on_done, follow)``):
it runs :class:`harness.sweep.jobs.RunJob` / :func:`~harness.sweep.jobs.run_in_folder` on each
run folder and reports each finished run through ``on_done(launch, state, note)``, where
``state`` is read back from the folder. Adding an executor is a subclass here and its name in
:data:`EXECUTORS`.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import re
import signal
import sys
import shutil
import subprocess
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from harness.atomic import write_json
from harness.sweep.resources import SlurmConfig
from harness.sweep.spec import RunSpec
from harness.sweep.state import (
    CONFIG, INTERRUPTED, LOG, PENDING, SUBMITIT_DIR, SUBMITTED, read_status, read_submitted, record_slurm_ends, run_state,
    slurm_active_jobs, slurm_end_states, read_json_file,
)

EXECUTORS = ["local", "slurm", "debug"]
OnDone = Callable[["Launch", str, str], None]


@dataclass
class Launch:
    """A run to start and its folder."""

    run: RunSpec
    folder: Path

    def materialize(self) -> None:
        """Write the run's ``config.json`` unless its folder has one (a job reads only that).

        The local executor calls this just before a run starts, so a large sweep starts
        training at once instead of first writing every folder; the other executors get
        folders written by :func:`harness.sweep.engine.prepare` before submission."""
        path = self.folder / CONFIG
        if read_json_file(path) is None:  # absent, or unreadable: the folder's id says what it was
            if path.exists():
                print(f"{path}: unreadable; rewritten from the sweep (the folder is run {self.run.id})",
                      file=sys.stderr)
            write_json(path, self.run.config.to_dict())


class Executor(ABC):
    """The one interface of every executor: start runs, report each as it ends."""

    name: str = ""  # the --executor value

    @abstractmethod
    def run(self, launches: list[Launch], on_done: OnDone, follow: dict[str, list[Launch]] | None = None) -> None:
        """Start ``launches`` and call ``on_done(launch, state, note)`` as each one ends, with the
        state read back from its folder. ``follow`` (job id -> its runs): runs of an earlier
        invocation still in a scheduler's queue, to wait for as well (executors without a
        queue have none). On Ctrl-C, stop what this process started and raise
        KeyboardInterrupt; the runs resume when the sweep is run again."""


def available_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_workers() -> int:
    """One worker per two cores: a CPU run of this harness keeps about two threads busy."""
    return max(1, available_cpus() // 2)


# ---------------------------------------------------------------------------- local


def gpu_slots(gpus: list[int], per_gpu: int) -> list[str]:
    """One ``CUDA_VISIBLE_DEVICES`` value per concurrent run: each GPU ``per_gpu`` times,
    interleaved (0, 1, 0, 1, ...) so that a partly filled machine spreads over its GPUs."""
    return [str(g) for _ in range(per_gpu) for g in gpus]


class LocalExecutor(Executor):
    """At most ``workers`` runs at once, each in its own process with ``cpus // workers`` threads.

    With ``slots`` (from :func:`gpu_slots`), at most one run per slot: a run takes a free
    slot, trains with ``CUDA_VISIBLE_DEVICES`` set to it, and gives it back when it ends.
    With ``job_slots`` (:class:`harness.sweep.job_slots.JobSlots`, shared with sweeps running at
    the same time), a run also holds one of those while it trains and waits when all are held.
    """

    name = "local"

    def __init__(self, workers: int, poll_s: float = 1.0, slots: list[str] | None = None, job_slots=None):
        self.slots = list(slots or [])
        self.job_slots = job_slots
        self.workers = min(workers, len(self.slots)) if self.slots else workers
        self.threads = max(1, available_cpus() // self.workers)
        self.poll_s = poll_s

    def run(self, launches: list[Launch], on_done: OnDone, follow: dict[str, list[Launch]] | None = None) -> None:
        from harness.sweep.jobs import local_main

        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["harness.sweep._preload"])
        queue = list(reversed(launches))
        free = list(self.slots)
        active: dict[int, tuple[multiprocessing.Process, Launch]] = {}
        slot_of: dict[int, str | None] = {}
        token_of: dict[int, int] = {}  # sentinel -> the job slot its run holds
        terminated = []

        def on_sigterm(signum, frame):  # a kill of the sweep stops its runs too (they resume later)
            terminated.append(signum)
            raise KeyboardInterrupt

        in_main_thread = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGTERM, on_sigterm) if in_main_thread else None
        try:
            while queue or active:
                while queue and len(active) < self.workers:
                    token = self.job_slots.acquire() if self.job_slots is not None else None
                    if self.job_slots is not None and token is None:
                        break  # every shared slot is held: wait for one of ours or another sweep's
                    launch = queue.pop()
                    launch.materialize()
                    folder = launch.folder.resolve()
                    slot = free.pop(0) if self.slots else None
                    proc = ctx.Process(target=local_main, name=f"run-{launch.run.id}",
                                       args=(str(folder), self.threads, str(folder / LOG), os.getcwd(), slot))
                    proc.start()
                    active[proc.sentinel] = (proc, launch)
                    slot_of[proc.sentinel] = slot
                    if token is not None:
                        token_of[proc.sentinel] = token
                if not active:
                    time.sleep(self.poll_s)  # runs waiting for a job slot held by another sweep
                    continue
                for sentinel in multiprocessing.connection.wait(list(active), timeout=self.poll_s):
                    proc, launch = active.pop(sentinel)
                    proc.join()
                    if sentinel in token_of:
                        self.job_slots.release(token_of.pop(sentinel))
                    if slot_of.get(sentinel) is not None:
                        free.insert(0, slot_of.pop(sentinel))
                    note = f"killed by signal {-proc.exitcode}" if proc.exitcode and proc.exitcode < 0 else ""
                    on_done(launch, run_state(launch.folder), note)
        except KeyboardInterrupt:
            # after Ctrl-C the runs got the same SIGINT (same process group): give them a moment,
            # then stop them; after a SIGTERM of the sweep alone, stop them at once
            deadline = time.monotonic() + (0 if terminated else 10)
            for proc, _ in active.values():
                proc.join(max(0.0, deadline - time.monotonic()))
                if proc.is_alive():
                    proc.terminate()
                    proc.join(5)
            raise
        finally:
            if in_main_thread:
                signal.signal(signal.SIGTERM, previous)


# ---------------------------------------------------------------------------- slurm

# SlurmConfig.extra keys that submitit names itself; the others go through additional_parameters
_SUBMITIT_NAMED = {"account", "qos", "constraint", "exclude", "nodelist", "comment", "mail_type",
                   "mail_user", "gres", "wckey"}


def slurm_parameters(cfg: SlurmConfig, job_name: str) -> dict:
    """Keyword arguments of ``submitit.SlurmExecutor.update_parameters`` for one array task
    per run: one node, ``tasks_per_run`` tasks (one process each; several make one DDP
    run), ``cpus_per_task`` CPUs each."""
    params: dict = {
        "job_name": job_name, "time": cfg.time, "nodes": 1, "ntasks_per_node": cfg.tasks_per_run,
        "cpus_per_task": cfg.cpus_per_task, "array_parallelism": cfg.array_parallelism,
        "signal_delay_s": cfg.signal_delay_s,
    }
    if cfg.partition:
        params["partition"] = cfg.partition
    if cfg.gpus_per_node:
        params["gpus_per_node"] = cfg.gpus_per_node
    if cfg.mem_gb is not None:
        mem = cfg.mem_gb
        params["mem"] = f"{int(mem)}GB" if mem == int(mem) else f"{int(mem * 1024)}MB"
    additional = {}
    for key, value in cfg.extra.items():
        if key in _SUBMITIT_NAMED:
            params[key] = str(value)
        else:
            additional[key] = str(value)
    if additional:
        params["additional_parameters"] = additional
    return params


def max_array_size(default: int = 1001) -> int:
    """The cluster's ``MaxArraySize`` (array indices must stay below it), from scontrol."""
    if shutil.which("scontrol") is None:
        return default
    try:
        out = subprocess.run(["scontrol", "show", "config"], capture_output=True, text=True,
                             timeout=60, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return default
    match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
    return int(match.group(1)) if match and int(match.group(1)) > 0 else default


def chunks(items: list, size: int) -> list[list]:
    return [items[i : i + size] for i in range(0, len(items), size)]


class SlurmExecutor(Executor):
    """Submits one job array per chunk of at most ``MaxArraySize`` runs (submitit ``map_array``)
    and, unless ``wait`` is False, follows them in ``squeue`` until they leave the queue."""

    name = "slurm"

    poll_s = 5.0  # seconds between two looks at squeue while waiting

    def __init__(self, cfg: SlurmConfig, sweep_name: str, sweep_folder: Path, wait: bool):
        self.cfg, self.sweep_name, self.sweep_folder, self.wait = cfg, sweep_name, sweep_folder, wait
        self.folder = sweep_folder / SUBMITIT_DIR

    def submit(self, launches: list[Launch]) -> dict[str, list[Launch]]:
        """Submit the runs; record and return their job ids (``123_4``) and the runs of each."""
        import submitit

        from harness.sweep.jobs import RunGroupJob, RunJob

        executor = submitit.SlurmExecutor(folder=self.folder / "%j", max_num_timeout=self.cfg.max_requeues)
        executor.update_parameters(**slurm_parameters(self.cfg, self.sweep_name))
        submitted = read_submitted(self.sweep_folder)
        jobs: dict[str, list[Launch]] = {}
        groups = chunks(launches, self.cfg.runs_per_task)  # the runs of each array job
        for chunk in chunks(groups, max_array_size()):
            if self.cfg.runs_per_task == 1:
                array = executor.map_array(RunJob(), [str(g[0].folder.resolve()) for g in chunk])
            else:
                array = executor.map_array(RunGroupJob(), [[str(x.folder.resolve()) for x in g] for g in chunk])
            for job, group in zip(array, chunk):
                jobs[job.job_id] = group
                submitted.update({launch.run.id: job.job_id for launch in group})
            write_json(self.folder / SUBMITTED, submitted)  # after each array: no job goes unrecorded
        return jobs

    def log_path(self, job_id: str) -> Path:
        from submitit.core.utils import JobPaths

        return JobPaths(self.folder / "%j", job_id=job_id).stderr

    def run(self, launches: list[Launch], on_done: OnDone, follow: dict[str, list[Launch]] | None = None) -> None:
        """Submit ``launches``; when waiting, also follow ``follow`` (job id -> its runs), the
        runs of earlier submissions still in the queue."""
        waiting = dict(follow or {})
        waiting.update(self.submit(launches) if launches else {})
        while self.wait and waiting:
            time.sleep(self.poll_s)
            active = slurm_active_jobs()
            if active is None:
                raise RuntimeError("squeue failed: cannot follow the submitted jobs "
                                   "(they keep running; check later with --status)")
            left = {job_id: waiting.pop(job_id) for job_id in [j for j in waiting if j not in active]}
            states = {job_id: [run_state(launch.folder) for launch in group] for job_id, group in left.items()}
            # a job that left the queue with a run neither finished nor failed: ask sacct how
            # it ended (scancel, time-out, node failure, out of memory)
            ended = slurm_end_states([j for j, s in states.items() if any(x in (INTERRUPTED, PENDING) for x in s)])
            for job_id, group in left.items():
                for launch, state in zip(group, states[job_id]):
                    if job_id in ended:
                        record_slurm_ends(launch.folder.parent,
                                          {launch.run.id: (state, read_status(launch.folder))}, ended)
                    how = f"slurm job {job_id} {ended[job_id]}; " if job_id in ended else ""
                    on_done(launch, state, f"{how}log: {self.log_path(job_id)}")


# ---------------------------------------------------------------------------- debug


class DebugExecutor(Executor):
    """All runs in this process, in order, through submitit's DebugExecutor."""

    name = "debug"

    def __init__(self, sweep_folder: Path):
        self.sweep_folder = sweep_folder

    def run(self, launches: list[Launch], on_done: OnDone, follow: dict[str, list[Launch]] | None = None) -> None:
        import submitit

        from harness.sweep.jobs import RunJob

        if not launches:
            return
        executor = submitit.AutoExecutor(folder=self.sweep_folder / SUBMITIT_DIR / "debug", cluster="debug")
        jobs = executor.map_array(RunJob(), [str(launch.folder) for launch in launches])
        for launch, job in zip(launches, jobs):
            job.result()
            on_done(launch, run_state(launch.folder), "")
