"""The slurm executor on the local SLURM cluster (``make slurm-up``; run with ``-m slurm``):
job arrays split at MaxArraySize, --no-wait then --status and a rerun that follows the
queued jobs. Cancel, preemption and requeue: tests/test_sweep_slurm_lifecycle.py."""

from __future__ import annotations

import copy
import shutil
import subprocess

import pytest
import yaml

from harness.sweep import executors
from harness.sweep.__main__ import main
from harness.sweep.state import read_status, read_submitted, status_job_id

pytestmark = pytest.mark.slurm

TIMING = ("epoch_time_s", "eval_time_s")


@pytest.fixture(autouse=True)
def cluster(monkeypatch):
    if shutil.which("sinfo") is None or subprocess.run(["sinfo", "-h"], capture_output=True).returncode:
        # selected explicitly with -m slurm: a missing cluster is a failure, not a silent skip
        pytest.fail("no SLURM cluster answers sinfo; start it with `make slurm-up`")
    monkeypatch.setattr(executors.SlurmExecutor, "poll_s", 0.5)


def make_sweep(tmp_path, tiny_tree, name, epochs=3, seeds=(0, 1, 2)):
    base = copy.deepcopy(tiny_tree)
    base["train"].update(epochs=epochs, num_threads=1)
    doc = {"name": name, "base": base, "grid": {"seed": list(seeds)},
           "slurm": {"time": 10, "cpus_per_task": 1, "mem_gb": 1, "array_parallelism": 3, "signal_delay_s": 60}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def test_arrays_are_split_at_max_array_size(tmp_path, tiny_tree, monkeypatch, capsys):
    monkeypatch.setattr(executors, "max_array_size", lambda: 2)
    path, results = make_sweep(tmp_path, tiny_tree, "chunks"), tmp_path / "results"
    assert main([str(path), "--executor", "slurm", "--results", str(results)]) == 0
    assert "chunks: 3 runs: 3 done" in capsys.readouterr().out
    jobs = read_submitted(results / "chunks")
    arrays = sorted({job.split("_")[0] for job in jobs.values()})
    assert len(jobs) == 3 and len(arrays) == 2
    # an array of 2 and, for the last run, a single job (submitit submits one run as a plain job)
    assert sorted(job.partition("_")[2] for job in jobs.values()) == ["", "0", "1"]
    for rid, job in jobs.items():
        status = read_status(results / "chunks" / rid)
        assert status["state"] == "done" and status_job_id(status) == job


def test_no_wait_then_status_then_rerun_follows_the_queue(tmp_path, tiny_tree, capsys):
    path, results = make_sweep(tmp_path, tiny_tree, "nowait", epochs=20), tmp_path / "results"
    args = [str(path), "--executor", "slurm", "--results", str(results)]
    assert main([*args, "--no-wait"]) == 0
    assert "submitted 3 runs" in capsys.readouterr().out
    assert main([*args, "--status"]) == 0
    table = capsys.readouterr().out
    assert table.count("queued") + table.count("running") + table.count(" done ") >= 3
    jobs_before = read_submitted(results / "nowait")
    assert main(args) == 0  # submits nothing new, waits for the queued jobs
    assert read_submitted(results / "nowait") == jobs_before
    assert "nowait: 3 runs: 3 done" in capsys.readouterr().out
