"""One run on two processes (DDP over gloo, CPU), launched by torchrun as a user would.

* A world-size-2 MoCA run equals the single-process run with the same global batch up to
  float rounding (the gradient average over ranks is the global batch mean; the queue holds
  the keys of both ranks in rank order): weights agree to 1e-5 relative, losses to 1e-6.
* A DDP run killed (SIGKILL of torchrun and both workers) after a checkpoint resumes with
  the same command and ends bitwise identical to an uninterrupted DDP run.
"""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import TINY
from harness import distributed
from harness.atomic import read_jsonl
from harness.config import ConfigError, config_from_dict
from harness.train import read_status, train_run
from harness.trainer import Trainer

TIME_KEYS = {"epoch_time_s", "eval_time_s"}


def ddp_tree(tiny_tree, epochs=4):
    tiny_tree["data"].update(num_points=640, input_dim=20)
    tiny_tree["model"]["hidden"] = [64]
    tiny_tree["train"].update(epochs=epochs, batch_size=32)
    tiny_tree["method"]["queue_size"] = 100  # not a multiple of the batch: wraps around
    return tiny_tree


def torchrun(tree, tmp_path, out, **popen):
    path = tmp_path / f"{out}.yaml"
    path.write_text(yaml.safe_dump(tree))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "harness.train", str(path), "--out", str(tmp_path / out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, **popen)


def child_pids(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if ppid == pid:
                out.append(int(d))
    return out


def wait_gone(pids, timeout=30.0):
    deadline = time.time() + timeout
    while time.time() < deadline and any(os.path.exists(f"/proc/{p}") and "Z" not in _state(p) for p in pids):
        time.sleep(0.05)


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


def finish(proc, timeout=600):
    _, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err.decode()[-3000:]


def weights_and_metrics(run_dir):
    ckpt = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    rows = [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in read_jsonl(run_dir / "metrics.jsonl")]
    return ckpt, rows


@pytest.fixture(scope="module")
def straight_ddp(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    tree = ddp_tree(copy.deepcopy(TINY))
    finish(torchrun(tree, tmp, "ddp"))
    return tree, tmp / "ddp"


@pytest.mark.slow
def test_world_size_two_matches_one_process_with_the_same_global_batch(tmp_path, straight_ddp):
    tree, ddp = straight_ddp
    status = read_status(ddp)
    assert status["state"] == "done" and status["world_size"] == 2 and status["step"] == 4 * 20
    assert train_run(config_from_dict(tree), tmp_path / "single") == "done"
    (a, rows_a), (b, rows_b) = weights_and_metrics(tmp_path / "single"), weights_and_metrics(ddp)
    assert [r["epoch"] for r in rows_a] == [r["epoch"] for r in rows_b] == [1, 2, 3, 4]
    for ra, rb in zip(rows_a, rows_b):
        for key in ("loss", "recon", "reg"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-6, abs=1e-9), key
    for key, value in a["model"].items():
        torch.testing.assert_close(b["model"][key], value, rtol=1e-5, atol=1e-6, msg=key)
    queue_a, queue_b = a["regularizer"]["module"]["queue"], b["regularizer"]["module"]["queue"]
    torch.testing.assert_close(queue_b, queue_a, rtol=1e-5, atol=1e-6)  # keys of both ranks, in order
    assert int(a["regularizer"]["module"]["queue_ptr"]) == int(b["regularizer"]["module"]["queue_ptr"])


@pytest.mark.slow
def test_a_killed_ddp_run_resumes_bitwise(tmp_path, straight_ddp):
    tree, ddp = straight_ddp
    proc = torchrun(tree, tmp_path, "killed")
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if (read_status(tmp_path / "killed") or {}).get("epoch", 0) >= 1:
            break
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be killed"
    workers = child_pids(proc.pid)  # torchrun starts them in sessions of their own
    assert len(workers) == 2
    os.kill(proc.pid, signal.SIGKILL)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    proc.wait()
    wait_gone(workers)
    status = read_status(tmp_path / "killed")
    assert status["state"] == "running" and 1 <= status["epoch"] < 4
    finish(torchrun(tree, tmp_path, "killed"))
    status = read_status(tmp_path / "killed")
    assert status["state"] == "done" and status["resumed_at"] is not None
    (a, rows_a), (b, rows_b) = weights_and_metrics(ddp), weights_and_metrics(tmp_path / "killed")
    assert rows_a == rows_b
    for key, value in a["model"].items():
        assert torch.equal(b["model"][key], value), key
    for key, value in a["regularizer"]["module"].items():
        assert torch.equal(b["regularizer"]["module"][key], value), key


def test_global_batch_must_split_evenly_over_ranks(tiny_tree, monkeypatch):
    monkeypatch.setattr(distributed, "current", lambda: distributed.Dist(rank=0, world_size=3))
    with pytest.raises(ConfigError, match="train.batch_size: got 32; allowed: a multiple of the 3 processes"):
        Trainer(config_from_dict(tiny_tree))


def test_single_process_collectives_are_identities():
    d = distributed.Dist()
    t = torch.arange(3.0)
    assert d.gather(t) is t and d.sum(t) is t and d.is_main and not d.enabled
    assert distributed.current() == d


@pytest.mark.slow
def test_a_sweep_job_on_two_processes_trains_the_same_run(tmp_path, straight_ddp):
    """What a SLURM task of a ``slurm.tasks_per_run: 2`` job runs (jobs.run_in_folder, rank 0
    holding the folder's lock), here under torchrun: the same run as ``harness.train``'s."""
    tree, ddp = straight_ddp
    run = tmp_path / "job"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(config_from_dict(tree).to_dict()))
    code = f"from harness.sweep.jobs import run_in_folder; raise SystemExit(run_in_folder({str(run)!r}) != 'done')"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--no-python",
           sys.executable, "-c", code]
    proc = subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    (a, rows_a), (b, rows_b) = weights_and_metrics(ddp), weights_and_metrics(run)
    assert rows_a == rows_b
    for key, value in a["model"].items():
        assert torch.equal(b["model"][key], value), key


def test_slurm_tasks_per_run_renders_one_task_and_gpu_per_process(tmp_path, tiny_tree):
    from submitit.slurm.slurm import _make_sbatch_string

    from harness.sweep.executors import slurm_parameters
    from harness.sweep.spec import SweepError, load_sweep

    def sweep(slurm):
        path = tmp_path / "s.yaml"
        path.write_text(yaml.safe_dump({"name": "s", "base": tiny_tree, "grid": {"seed": [0]}, "slurm": slurm}))
        return load_sweep(path)

    s = sweep({"gpus_per_node": 4, "tasks_per_run": 4, "cpus_per_task": 8})
    text = _make_sbatch_string(command="python -u x", folder=tmp_path / "%j", map_count=2,
                               **slurm_parameters(s.slurm, s.name))
    for line in ["--ntasks-per-node=4", "--gpus-per-node=4", "--cpus-per-task=8", "--nodes=1"]:
        assert f"#SBATCH {line}\n" in text
    with pytest.raises(SweepError, match="slurm.gpus_per_node: got 2; allowed: 0 or slurm.tasks_per_run"):
        sweep({"gpus_per_node": 2, "tasks_per_run": 4})
    with pytest.raises(SweepError, match="slurm.tasks_per_run: got 0"):
        sweep({"tasks_per_run": 0})
