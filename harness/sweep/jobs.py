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

import contextlib
import os
import sys
from pathlib import Path

import submitit
import torch

from harness import distributed
from harness.config import config_from_dict
from harness.run_folder import CONFIG, DIVERGED, DONE, FAILED, RUNNING, read_config_tree, run_lock

EXIT_CODES = {DONE: 0, FAILED: 1, DIVERGED: 3, RUNNING: 4}


def run_in_folder(run_dir: str | Path, threads: int | None = None) -> str:
    """Train (or resume) the run in ``run_dir``; return its final state.

    ``threads`` sets torch's intra-op thread count when the config leaves
    ``train.num_threads`` unset (under SLURM: the task's ``SLURM_CPUS_PER_TASK``), so parallel
    runs do not oversubscribe the cores. Returns ``running`` without doing anything when
    another process is already training this folder (:func:`harness.train.train_run` holds
    the folder's lock), and ``failed`` when its config.json cannot be read (one line).
    """
    from harness.train import train_run

    run_dir = Path(run_dir)
    distributed.export_slurm_env()  # several SLURM tasks of one job = one run on several processes
    if distributed.world_size_from_env() > 1:
        return _run_distributed(run_dir, threads)
    tree = read_config_tree(run_dir)
    if tree is None:
        print(f"{run_dir / CONFIG}: missing or unreadable; rerun the sweep to rewrite it", file=sys.stderr)
        return FAILED
    cfg = config_from_dict(tree)
    if threads is None:
        threads = int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or None
    if threads and cfg.train.num_threads is None:
        torch.set_num_threads(threads)
    return train_run(cfg, run_dir)


def _run_distributed(run_dir: Path, threads: int | None) -> str:
    """One rank of a multi-process run: rank 0 holds the folder's lock and tells the others
    whether it got it (they train only together with it)."""
    from harness.train import train_run

    tree = read_config_tree(run_dir)
    if tree is None:
        print(f"{run_dir / CONFIG}: missing or unreadable; rerun the sweep to rewrite it", file=sys.stderr)
        return FAILED
    cfg = config_from_dict(tree)
    dist = distributed.init_from_env(cfg.train.device)
    state = None
    try:
        threads = threads or int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or None
        if threads and cfg.train.num_threads is None:
            torch.set_num_threads(threads)
        with contextlib.ExitStack() as stack:
            held = stack.enter_context(run_lock(run_dir)) if dist.is_main else False
            if not dist.sum(torch.tensor([int(held)])).item():
                if dist.is_main:
                    print(f"{run_dir}: another process is training this run; nothing done", file=sys.stderr)
                state = RUNNING
                return state
            state = train_run(cfg, run_dir, take_lock=False)  # rank 0 holds the lock already
            return state
    finally:
        distributed.shutdown(together=state not in (None, FAILED))


class RunJob(submitit.helpers.Checkpointable):
    """submitit job: ``RunJob()(run_dir)`` trains the run in ``run_dir``."""

    def __call__(self, run_dir: str) -> str:
        return run_in_folder(run_dir)

    def checkpoint(self, run_dir: str, *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue the same folder; the new job resumes from the checkpoint on disk."""
        return submitit.helpers.DelayedSubmission(RunJob(), run_dir)


class RunGroupJob(submitit.helpers.Checkpointable):
    """submitit job of ``slurm.runs_per_task > 1``: ``RunGroupJob()(run_dirs)`` trains the runs
    at once, each in its own process (as the local executor does) on one of the job's GPUs
    (run i on GPU i mod n of ``CUDA_VISIBLE_DEVICES``) with an equal share of its CPUs."""

    def __call__(self, run_dirs: list[str]) -> list[str]:
        import multiprocessing

        from harness.sweep.state import LOG, run_state

        visible = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
        cpus = int(os.environ.get("SLURM_CPUS_PER_TASK", "0") or 0) or (os.cpu_count() or 1)
        threads = max(1, cpus // len(run_dirs))
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["harness.sweep._preload"])
        procs = []
        for i, run_dir in enumerate(run_dirs):
            gpu = visible[i % len(visible)] if visible else None
            proc = ctx.Process(target=local_main, args=(run_dir, threads, str(Path(run_dir) / LOG), os.getcwd(), gpu))
            proc.start()
            procs.append(proc)
        for proc in procs:
            proc.join()
        return [run_state(Path(d)) for d in run_dirs]

    def checkpoint(self, run_dirs: list[str], *args, **kwargs) -> submitit.helpers.DelayedSubmission:
        """Requeue the same folders; each run resumes from its checkpoint on disk."""
        return submitit.helpers.DelayedSubmission(RunGroupJob(), run_dirs)


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
