"""The job that trains one run from its folder: the same code under every executor.

A job gets nothing but the path of a run folder. It reads ``config.json`` (written by the
sweep engine when the run was scheduled) and calls :func:`harness.train.train_run`, which
starts the run or resumes it from ``checkpoint.pt``. Because all state lives on disk, a job
that is killed, preempted or timed out is redone by running the same job again.

:class:`RunJob` is what the slurm and debug executors submit. submitit pickles it *by
reference*, so it lives at module level in an importable module, and it holds no state: its
``checkpoint`` (called by submitit on preemption or before the time limit) requeues a fresh
``RunJob`` with the same folder, and the requeued job resumes from the newest checkpoint on
disk, never from anything pickled at submission time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import submitit
import torch

from harness.atomic import read_json
from harness.config import config_from_dict
from harness.sweep.state import CONFIG, DONE, DIVERGED, FAILED, RUNNING, run_lock

EXIT_CODES = {DONE: 0, FAILED: 1, DIVERGED: 3, RUNNING: 4}


def run_in_folder(run_dir: str | Path, threads: int | None = None) -> str:
    """Train (or resume) the run in ``run_dir``; return its final state.

    ``threads`` sets torch's intra-op thread count when the config leaves
    ``train.num_threads`` unset (under SLURM: the task's ``SLURM_CPUS_PER_TASK``), so parallel
    runs do not oversubscribe the cores. Returns ``running`` without doing anything when
    another process is already training this folder.
    """
    from harness.train import train_run

    run_dir = Path(run_dir)
    with run_lock(run_dir) as held:
        if not held:
            print(f"{run_dir}: another process is training this run; nothing done", file=sys.stderr)
            return RUNNING
        cfg = config_from_dict(read_json(run_dir / CONFIG))
        if threads is None:
            threads = int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or None
        if threads and cfg.train.num_threads is None:
            torch.set_num_threads(threads)
        return train_run(cfg, run_dir)


class RunJob(submitit.helpers.Checkpointable):
    """submitit job: ``RunJob()(run_dir)`` trains the run in ``run_dir``."""

    def __call__(self, run_dir: str) -> str:
        return run_in_folder(run_dir)

    def checkpoint(self, run_dir: str, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue the same folder; the new job resumes from the checkpoint on disk."""
        return submitit.helpers.DelayedSubmission(RunJob(), run_dir)


def local_main(run_dir: str, threads: int, log_path: str, cwd: str, gpu: str | None = None) -> None:
    """Body of a local worker process: output goes to the run's log, exit status = state.

    ``cwd`` is the sweep's working folder: the worker is forked from a server started
    earlier, perhaps elsewhere, and relative paths of the config (``data.root``) must mean
    what they mean to the sweep. ``gpu`` becomes ``CUDA_VISIBLE_DEVICES`` (the forkserver
    never touched CUDA, so the run's first CUDA call sees only that GPU).
    """
    os.chdir(cwd)
    if gpu is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    state = run_in_folder(run_dir, threads)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(EXIT_CODES.get(state, 1))
