"""Lifecycle of the tasks of a real SLURM job array (local cluster, ``make slurm-up``; run with
``-m slurm``), beyond tests/test_sweep_slurm.py:

* a task cancelled with ``scancel <array>_<task>`` while it trains is reported as
  ``interrupted`` with sacct's reason (``slurm job 12_1 CANCELLED by 0``) by the sweep's wait
  loop, by ``--status`` and in its status.json; the other tasks finish with complete results
  (metrics.jsonl, runs.csv, curves.csv), and a rerun resumes the cancelled run from its
  checkpoint and finishes it as an uninterrupted run would;
* in one array, one task preempted through submitit (SIGTERM then USR2: submitit's
  checkpoint-and-requeue path) and another requeued from outside with ``scontrol requeue``
  (the job restarts from scratch; only the run folder carries over) both resume from their
  last checkpoint -- the metrics lines written before the interruption are kept byte for
  byte -- and end with the same metrics and model tensors as an uninterrupted local run.

A task is frozen (SIGSTOP) the moment it is caught mid-run and kept frozen until SLURM has
killed it, so that the ``KillWait`` seconds between SLURM's SIGTERM and SIGKILL (which
submitit ignores) cannot let it run on to the end; what it left on disk is then exactly what
the restarted job resumes from.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_sweep_slurm import TIMING, cluster, make_sweep  # noqa: F401  (cluster: autouse fixture)

from harness.config import config_from_dict
from harness.sweep.__main__ import main
from harness.sweep.state import pid_alive, read_status, read_submitted, slurm_active_jobs, status_job_id

pytestmark = pytest.mark.slurm

EPOCHS = 20  # about 0.1 s each with 1000 points: a task is caught within its first half
WAIT_S = 240  # the longest any step may take (the cluster is shared); then the test fails


def slow_tree(tiny_tree: dict) -> dict:
    tree = copy.deepcopy(tiny_tree)
    tree["data"]["num_points"] = 1000
    return tree


@pytest.fixture
def sweep_folder(tmp_path):
    """results/<sweep>/ of a test; at the end every job it submitted is cancelled, so a
    failed test leaves nothing in the queue."""
    holder: list[Path] = []
    yield holder
    for folder in holder:
        jobs = sorted(set(read_submitted(folder).values()))
        if jobs:
            subprocess.run(["scancel", *jobs], capture_output=True, timeout=60)


def start_sweep(args: list[str]) -> tuple[threading.Thread, list[int]]:
    """``python -m harness.sweep ARGS`` (in-process, waiting on the jobs) in a thread."""
    codes: list[int] = []
    thread = threading.Thread(target=lambda: codes.append(main(args)), daemon=True)
    thread.start()
    return thread, codes


def metric_lines(run: Path) -> list[str]:
    return (run / "metrics.jsonl").read_text().splitlines()


def upto(lines: list[str], epoch: int) -> list[str]:
    """The metrics lines of epochs <= ``epoch`` (the checkpoint a resumed run starts from)."""
    return [line for line in lines if json.loads(line)["epoch"] <= epoch]


def without_timing(lines: list[str]) -> list[dict]:
    return [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in lines]


def caught_mid_run(folder: Path, skip: set[Path]) -> tuple[Path, dict] | None:
    """A run of ``folder`` (not in ``skip``) training in a SLURM job, in the first half of its
    epochs after at least one checkpoint, frozen with SIGSTOP; None when there is none yet."""
    for path in folder.glob("*/status.json") if folder.exists() else []:
        run, status = path.parent, read_status(path.parent)
        if run in skip or not status or status.get("state") != "running" or not status_job_id(status):
            continue
        if 1 <= status.get("epoch", 0) < EPOCHS // 2 and pid_alive(status["pid"]):
            os.kill(status["pid"], signal.SIGSTOP)
            return run, read_status(run)  # frozen: this status is the last before the kill
    return None


def hold_until_killed(pid: int) -> None:
    """Keep ``pid`` stopped (SLURM sends SIGCONT with its SIGTERM) until SLURM's SIGKILL."""
    deadline = time.monotonic() + 60
    while pid_alive(pid):
        assert time.monotonic() < deadline, f"process {pid} outlived its job by a minute"
        try:
            os.kill(pid, signal.SIGSTOP)
        except ProcessLookupError:
            break
        time.sleep(0.005)


def wait_off_queue(job: str) -> None:
    deadline = time.monotonic() + 60
    while job in (slurm_active_jobs() or set()):
        assert time.monotonic() < deadline, f"job {job} still in squeue after a minute"
        time.sleep(0.2)


def assert_matches_uninterrupted(run: Path, reference: Path) -> None:
    """Metrics (time keys aside) and the final model tensors equal those of a local run of the
    same config (trained here in-process, from scratch, uninterrupted)."""
    from harness.train import train_run

    assert train_run(config_from_dict(json.loads((run / "config.json").read_text())), reference) == "done"
    assert without_timing(metric_lines(run)) == without_timing(metric_lines(reference))
    got, want = (torch.load(d / "checkpoint.pt", weights_only=True) for d in (run, reference))
    assert (got["epoch"], got["step"]) == (want["epoch"], want["step"]) and got["epoch"] == EPOCHS
    assert got["model"].keys() == want["model"].keys()
    for name, tensor in want["model"].items():
        assert torch.equal(got["model"][name], tensor), name


def test_scancel_of_one_array_task_is_reported_and_resumed(tmp_path, tiny_tree, sweep_folder, capsys):
    path = make_sweep(tmp_path, slow_tree(tiny_tree), "cancel", epochs=EPOCHS, seeds=(0, 1, 2))
    results = tmp_path / "results"
    folder = results / "cancel"
    sweep_folder.append(folder)
    args = [str(path), "--executor", "slurm", "--results", str(results)]
    thread, codes = start_sweep(args)

    deadline, caught = time.monotonic() + WAIT_S, None
    while caught is None and thread.is_alive():
        assert time.monotonic() < deadline, "no task was caught mid-run"
        caught = caught_mid_run(folder, set())
        time.sleep(0.01)
    assert caught is not None, "the sweep ended before a task could be caught mid-run"
    victim, status = caught
    job = status_job_id(status)
    assert read_submitted(folder)[victim.name] == job and "_" in job  # a task of a job array
    subprocess.run(["scancel", job], check=True, timeout=60)
    hold_until_killed(status["pid"])
    kept_epochs, kept_lines = read_status(victim)["epoch"], metric_lines(victim)
    assert 1 <= kept_epochs < EPOCHS and upto(kept_lines, kept_epochs)

    # --status, from another process, once the job has left the queue
    wait_off_queue(job)
    out = subprocess.run([sys.executable, "-m", "harness.sweep", *args, "--status"], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    assert f"{victim.name}  interrupted" in out and f"interrupted: slurm job {job} CANCELLED by" in out, out

    thread.join(WAIT_S)
    assert not thread.is_alive() and codes == [1]  # not every run is done
    err = capsys.readouterr().err
    assert f"{victim.name} " in err and f": interrupted: slurm job {job} CANCELLED by" in err, err
    status = read_status(victim)
    assert status["state"] == "interrupted" and status["reason"].startswith(f"slurm job {job} CANCELLED")
    assert status["epoch"] == kept_epochs and metric_lines(victim) == kept_lines  # nothing ran after

    # the other tasks finished normally, with complete results
    others = [d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".") and d != victim]
    assert len(others) == 2
    for run in others:
        assert read_status(run)["state"] == "done"
        assert [json.loads(line)["epoch"] for line in metric_lines(run)] == list(range(1, EPOCHS + 1))
    runs = pd.read_csv(folder / "runs.csv").set_index("id")
    assert sorted(runs["status"]) == ["done", "done", "interrupted"]
    assert runs.loc[victim.name, "epochs"] == json.loads(kept_lines[-1])["epoch"]
    assert sorted(runs["seed"]) == [0, 1, 2]
    curves = pd.read_csv(folder / "curves.csv")
    assert len(curves) == sum(len(metric_lines(d)) for d in [victim, *others])

    # a rerun resubmits the cancelled run only, which resumes from its checkpoint
    jobs_before = read_submitted(folder)
    thread, codes = start_sweep(args)
    thread.join(WAIT_S)
    assert not thread.is_alive() and codes == [0]
    assert "cancel: 3 runs: 3 done" in capsys.readouterr().out
    jobs_after = read_submitted(folder)
    assert {rid for rid in jobs_after if jobs_after[rid] != jobs_before[rid]} == {victim.name}
    status = read_status(victim)
    assert status["state"] == "done" and status["resumed_at"] and status["reason"] is None
    kept = upto(kept_lines, kept_epochs)
    assert metric_lines(victim)[: len(kept)] == kept  # epochs before the cancel not trained again
    runs = pd.read_csv(folder / "runs.csv")
    assert list(runs["status"]) == ["done"] * 3 and list(runs["epochs"]) == [EPOCHS] * 3
    assert len(pd.read_csv(folder / "curves.csv")) == sum(len(metric_lines(d)) for d in [victim, *others])
    assert_matches_uninterrupted(victim, tmp_path / "reference")


def test_preempted_and_requeued_tasks_resume_bitwise(tmp_path, tiny_tree, sweep_folder, capsys):
    path = make_sweep(tmp_path, slow_tree(tiny_tree), "requeue", epochs=EPOCHS, seeds=(0, 1))
    results = tmp_path / "results"
    folder = results / "requeue"
    sweep_folder.append(folder)
    thread, codes = start_sweep([str(path), "--executor", "slurm", "--results", str(results)])

    victims: dict[str, Path] = {}  # "requeued" / "preempted" -> run folder
    jobs: dict[str, str] = {}  # "requeued" / "preempted" -> its array task (123_0)
    held: dict[int, Path] = {}  # pid of a requeued job's process -> its run, until SLURM kills it
    kept: dict[Path, tuple[int, list[str]]] = {}  # run -> (checkpoint epoch, metrics lines) at the kill
    deadline = time.monotonic() + WAIT_S
    while (len(victims) < 2 or held) and thread.is_alive():
        assert time.monotonic() < deadline, f"caught only {sorted(victims)} mid-run"
        caught = caught_mid_run(folder, set(victims.values()))
        if caught is not None:
            run, status = caught
            job = status_job_id(status)
            assert "_" in job and read_submitted(folder)[run.name] == job
            if "requeued" not in victims:  # from outside: SLURM kills the job and starts it again
                subprocess.run(["scontrol", "requeue", job], check=True, timeout=60)
                victims["requeued"], jobs["requeued"], held[status["pid"]] = run, job, run
            else:  # preemption: SIGTERM, then the USR2 that submitit turns into checkpoint + requeue
                subprocess.run(["scancel", job, "--signal", "SIGTERM"], check=True, timeout=60)
                subprocess.run(["scancel", job, "--signal", "USR2"], check=True, timeout=60)
                os.kill(status["pid"], signal.SIGCONT)
                victims["preempted"], jobs["preempted"] = run, job
        for pid, run in list(held.items()):
            if pid_alive(pid):
                os.kill(pid, signal.SIGSTOP)  # SLURM sent SIGCONT + SIGTERM; SIGKILL follows
            else:
                kept[run] = (read_status(run)["epoch"], metric_lines(run))
                del held[pid]
        time.sleep(0.005)
    assert len(victims) == 2 and not held, f"the sweep ended before both tasks were caught: {sorted(victims)}"
    thread.join(WAIT_S)
    assert not thread.is_alive() and codes == [0]
    assert "requeue: 2 runs: 2 done" in capsys.readouterr().out

    requeued = victims["requeued"]
    epoch, lines = kept[requeued]
    lines = upto(lines, epoch)
    assert 1 <= epoch < EPOCHS and lines
    assert metric_lines(requeued)[: len(lines)] == lines  # epochs before the requeue not trained again
    for name, run in victims.items():
        status = read_status(run)
        assert status["state"] == "done" and status["resumed_at"], name
        # finished by the same array task, restarted (no new submission)
        assert status_job_id(status) == jobs[name] == read_submitted(folder)[run.name], name
        assert_matches_uninterrupted(run, tmp_path / f"reference-{name}")
