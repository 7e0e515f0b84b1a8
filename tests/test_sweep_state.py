"""Run states read from disk (stale 'running' statuses, SLURM queue), the skip/resume plan,
and the per-run lock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
from datetime import datetime, timedelta, timezone

import pytest
import yaml

from harness.sweep import load_sweep
from harness.sweep.engine import plan
from harness.sweep.state import (
    DIVERGED, DONE, FAILED, INTERRUPTED, PENDING, QUEUED, RUNNING, pid_alive, read_status, record_slurm_ends,
    run_lock, run_state,
)

HOST = socket.gethostname()


def _now(delta_s: float = 0.0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=delta_s)).isoformat(timespec="seconds")


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _status(tmp_path, **fields):
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "status.json").write_text(json.dumps(fields))
    return tmp_path


def test_final_and_missing_states(tmp_path):
    assert run_state(tmp_path / "nothing") == PENDING
    for state in (DONE, DIVERGED, FAILED):
        assert run_state(_status(tmp_path / state, state=state, host=HOST, pid=os.getpid())) == state
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "status.json").write_text('{"state": "do')
    assert run_state(tmp_path / "corrupt") == PENDING  # the trainer will resume or restart it


def test_running_status_is_checked_against_its_process(tmp_path):
    live = _status(tmp_path / "live", state="running", host=HOST, pid=os.getpid(), updated_at=_now())
    assert run_state(live) == RUNNING
    dead = _status(tmp_path / "dead", state="running", host=HOST, pid=_dead_pid(), updated_at=_now())
    assert run_state(dead) == INTERRUPTED
    # a pid that was recycled: the live process started after the status was last written
    recycled = _status(tmp_path / "recycled", state="running", host=HOST, pid=os.getpid(),
                       updated_at=_now(-86400 * 30))
    assert run_state(recycled) == INTERRUPTED
    assert pid_alive(os.getpid()) and not pid_alive(_dead_pid()) and not pid_alive(-3)


def test_zombie_is_dead(tmp_path):
    proc = subprocess.Popen(["true"])
    deadline = datetime.now() + timedelta(seconds=30)
    while datetime.now() < deadline:  # exited but not reaped: a zombie
        with open(f"/proc/{proc.pid}/stat") as f:
            if f.read().split(") ")[1].startswith("Z"):
                break
    assert not pid_alive(proc.pid)
    proc.wait()


def test_other_hosts_and_slurm_jobs(tmp_path):
    elsewhere = _status(tmp_path / "a", state="running", host="node-17", pid=1, updated_at=_now())
    assert run_state(elsewhere) == RUNNING  # cannot be checked: trusted
    on_slurm = _status(tmp_path / "b", state="running", host="node-17", pid=1, updated_at=_now(),
                       slurm_job_id="901", slurm_array_job_id="900", slurm_array_task_id="3")
    assert run_state(on_slurm, active_jobs={"900_3"}) == RUNNING
    assert run_state(on_slurm, active_jobs={"900_4"}) == INTERRUPTED
    # a requeued job: the old process is gone but the array task waits in the queue again
    requeued = _status(tmp_path / "c", state="running", host=HOST, pid=_dead_pid(), updated_at=_now())
    assert run_state(requeued, active_jobs={"900_5"}, submitted_job="900_5") == QUEUED
    assert run_state(tmp_path / "never", active_jobs={"900_6"}, submitted_job="900_6") == QUEUED
    assert run_state(tmp_path / "never", active_jobs=set(), submitted_job="900_6") == PENDING


def test_plan_skips_final_and_live_runs(tmp_path, tiny_tree):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "p", "base": tiny_tree, "grid": {"seed": list(range(7))}}))
    sweep = load_sweep(path)
    given = [DONE, DIVERGED, FAILED, INTERRUPTED, RUNNING, QUEUED, PENDING]
    states = {run.id: (state, None) for run, state in zip(sweep.runs, given)}
    started = [states[r.id][0] for r in plan(sweep, states, retry_failed=False)]
    assert started == [INTERRUPTED, PENDING]
    started = [states[r.id][0] for r in plan(sweep, states, retry_failed=True)]
    assert started == [FAILED, INTERRUPTED, PENDING]  # diverged stays final


def test_run_lock_is_exclusive_and_released(tmp_path):
    with run_lock(tmp_path) as first:
        assert first
        with run_lock(tmp_path) as second:
            assert not second
    with run_lock(tmp_path) as again:
        assert again


@pytest.mark.parametrize("bad", ["../x", "ABCDEF012345", "0123456789a", None])
def test_run_ids_from_disk_cannot_escape(tmp_path, bad):
    from harness.sweep.identity import PathEscape, run_dir

    with pytest.raises(PathEscape):
        run_dir(tmp_path, bad)
    assert run_dir(tmp_path, "0123456789ab") == tmp_path / "0123456789ab"


def test_ended_slurm_job_is_recorded_as_interrupted(tmp_path):
    run = tmp_path / "0123456789ab"
    run.mkdir()
    status = {"state": "running", "host": HOST, "pid": _dead_pid(),
              "slurm_job_id": "13", "slurm_array_job_id": "12", "slurm_array_task_id": "1"}
    (run / "status.json").write_text(json.dumps(status))
    states = {run.name: (INTERRUPTED, status)}
    with run_lock(run):  # a process training the run: never overwritten
        assert record_slurm_ends(tmp_path, states, {"12_1": "CANCELLED by 0"}) == states
    assert read_status(run)["state"] == RUNNING
    got = record_slurm_ends(tmp_path, states, {"12_1": "CANCELLED by 0"})
    assert got[run.name][0] == INTERRUPTED and read_status(run)["reason"] == "slurm job 12_1 CANCELLED by 0"
    assert run_state(run) == INTERRUPTED
    assert run_state(run, active_jobs={"12_1"}, submitted_job="12_1") == QUEUED
