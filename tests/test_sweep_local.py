"""End to end with tiny synthetic runs: the local executor (2 workers), skip-done, a worker
killed with SIGKILL and resumed bit-for-bit, failed runs and --retry-failed, the debug
executor, and collection at the end of a sweep."""

from __future__ import annotations

import copy
import json
import os
import signal
import threading
import time

import pandas as pd
import pytest
import torch
import yaml

from harness.config import config_from_dict
from harness.sweep.__main__ import main
from harness.sweep.state import read_status, run_state

TIMING = ("epoch_time_s", "eval_time_s")


def make_sweep(tmp_path, tiny_tree, name="e2e", epochs=3, seeds=(0, 1), **extra):
    base = copy.deepcopy(tiny_tree)
    base["train"].update(epochs=epochs, num_threads=1)  # same numbers in the workers and here
    doc = {"name": name, "base": base, "grid": {"seed": list(seeds)}, **extra}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def run_sweep(path, results, *args) -> int:
    return main([str(path), "--results", str(results), *args])


def snapshot(folder) -> dict:
    return {p.relative_to(folder): p.stat().st_mtime_ns for p in folder.rglob("*") if p.is_file()}


def comparable(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING} for r in rows]


def metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_local_sweep_runs_collects_and_skips_done(tmp_path, tiny_tree, capsys):
    path, results = make_sweep(tmp_path, tiny_tree), tmp_path / "results"
    assert run_sweep(path, results, "--workers", "2") == 0
    out = capsys.readouterr().out
    assert "e2e: 2 runs: 2 done" in out
    folder = results / "e2e"
    manifest = json.loads((folder / "sweep.json").read_text())
    assert manifest["varied_keys"] == ["seed"] and [r["name"] for r in manifest["runs"]] == ["seed=0", "seed=1"]
    for entry in manifest["runs"]:
        run = folder / entry["id"]
        assert read_status(run)["state"] == "done"
        cfg = config_from_dict(json.loads((run / "config.json").read_text()))
        assert cfg.seed == entry["varied"]["seed"]
        assert (run / "train.log").exists() and (run / "checkpoint.pt").exists()
    runs = pd.read_csv(folder / "runs.csv")
    assert list(runs["status"]) == ["done", "done"] and list(runs["epochs"]) == [3, 3]
    assert list(runs["seed"]) == [0, 1]
    assert len(pd.read_csv(folder / "curves.csv")) == 6

    before = snapshot(folder)
    assert run_sweep(path, results, "--workers", "2") == 0  # nothing left to do
    capsys.readouterr()
    after = snapshot(folder)
    changed = {str(p) for p in after if after[p] != before.get(p)}
    assert changed <= {".lock"}, changed  # nothing written but the sweep's (git-ignored) lock

    assert run_sweep(path, results, "--status") == 0
    status_out = capsys.readouterr().out
    assert status_out.count(" done ") == 2 and "e2e: 2 runs: 2 done" in status_out


def test_sigkilled_worker_resumes_bitwise_and_nothing_else_reruns(tmp_path, tiny_tree, capsys):
    epochs = 20
    path, results = make_sweep(tmp_path, tiny_tree, name="kill", epochs=epochs), tmp_path / "results"
    folder = results / "kill"
    codes: list[int] = []
    sweep = threading.Thread(target=lambda: codes.append(run_sweep(path, results, "--workers", "2")))
    sweep.start()
    victim, deadline = None, time.monotonic() + 300
    while victim is None and time.monotonic() < deadline and sweep.is_alive():
        for run in folder.glob("*/status.json") if folder.exists() else []:
            status = read_status(run.parent)
            if status and status.get("state") == "running" and status.get("epoch", 0) >= 1:
                os.kill(status["pid"], signal.SIGSTOP)  # frozen mid-run, still alive
                assert run_sweep(path, results, "--status") == 0  # sees it running, starts nothing
                assert f"{run.parent.name}  running" in capsys.readouterr().out
                os.kill(status["pid"], signal.SIGKILL)
                victim = run.parent
                break
        time.sleep(0.005)
    sweep.join(300)
    assert victim is not None and codes == [1]
    assert read_status(victim)["epoch"] < epochs
    assert run_state(victim) == "interrupted"
    assert "interrupted: killed by signal 9" in capsys.readouterr().err
    (other,) = [d for d in folder.iterdir() if d.is_dir() and d.name != ".submitit" and d != victim]
    assert read_status(other)["state"] == "done"
    other_files = snapshot(other)

    assert run_sweep(path, results, "--workers", "2") == 0  # resumes the victim only
    assert read_status(victim)["state"] == "done"
    assert snapshot(other) == other_files

    # the same config trained without interruption, here
    from harness.train import train_run

    reference = tmp_path / "reference"
    cfg = config_from_dict(json.loads((victim / "config.json").read_text()))
    assert train_run(cfg, reference) == "done"
    assert comparable(metrics(victim)) == comparable(metrics(reference))
    assert [r["epoch"] for r in metrics(victim)] == list(range(1, epochs + 1))
    resumed = torch.load(victim / "checkpoint.pt", weights_only=True)["model"]
    straight = torch.load(reference / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(resumed[k], straight[k]) for k in straight)


def test_failed_runs_rerun_only_with_retry_failed(tmp_path, tiny_tree, capsys, monkeypatch):
    """A run that crashes (here: its loader, for one data setting; the debug executor runs in
    this process) stays failed until --retry-failed. (A run that failed only for missing data
    waits as pending instead: tests/test_preflight.py.)"""
    from harness.datasets import DATASETS

    real = DATASETS.get("synthetic")

    def crashing(data_cfg, seed=0):
        if data_cfg.num_points == 161:
            raise RuntimeError("a crash of this run (TEST)")
        return real(data_cfg, seed)

    crashing.__dict__.update(real.__dict__)  # its kind and settings
    monkeypatch.setitem(DATASETS._items, "synthetic", crashing)
    path = make_sweep(tmp_path, tiny_tree, name="fail", seeds=(0,),
                      cases=[{"data.name": "synthetic"}, {"data.num_points": 161}])
    results = tmp_path / "results"
    assert run_sweep(path, results, "--executor", "debug") == 1
    err = capsys.readouterr().err
    assert "failed:" in err and "a crash of this run (TEST)" in err
    runs = pd.read_csv(results / "fail" / "runs.csv")
    assert list(runs["status"]) == ["done", "failed"]
    failed = results / "fail" / runs.loc[1, "id"]
    first = read_status(failed)["updated_at"], (failed / "status.json").stat().st_mtime_ns

    assert run_sweep(path, results, "--executor", "debug") == 1
    assert "1 failed runs are not rerun (use --retry-failed)" in capsys.readouterr().err
    assert (failed / "status.json").stat().st_mtime_ns == first[1]

    assert run_sweep(path, results, "--executor", "debug", "--retry-failed") == 1
    assert (failed / "status.json").stat().st_mtime_ns != first[1]
    assert read_status(failed)["state"] == "failed"


def test_status_lines_off_a_terminal(tmp_path, tiny_tree, capsys):
    """Off a terminal (pytest's captured stderr): one line per finished run with its final
    metrics, and a summary line every --status-every seconds while runs are going."""
    path = make_sweep(tmp_path, tiny_tree, name="live", epochs=40, seeds=(0, 1))
    assert run_sweep(path, tmp_path / "results", "--executor", "debug", "--status-every", "0.2") == 0
    err = capsys.readouterr().err
    finished = [line for line in err.splitlines() if line.startswith("[") and "/2] " in line]
    assert len(finished) == 2 and all(": done after 40 epochs, " in line for line in finished)
    assert finished[0].startswith("[1/2] ") and "seed=0" in finished[0]
    summaries = [line for line in err.splitlines() if "live: 2 runs: " in line]
    assert summaries and all(line[0] == "[" and line[9] == "]" for line in summaries)  # [HH:MM:SS]


def test_dry_run_writes_nothing(tmp_path, tiny_tree, capsys):
    path, results = make_sweep(tmp_path, tiny_tree, name="dry", seeds=(0, 1, 2)), tmp_path / "results"
    assert run_sweep(path, results, "--dry-run") == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["id", "state", "epoch", "seed"]
    assert [line.split()[1:] for line in out[1:4]] == [["pending", "-/3", str(s)] for s in range(3)]
    assert "would start 3 of 3 runs" in out[-1]
    assert not results.exists()


@pytest.mark.parametrize("workers", ["0", "x"])
def test_bad_worker_count_is_a_usage_error(tmp_path, tiny_tree, workers):
    with pytest.raises(SystemExit) as e:
        run_sweep(make_sweep(tmp_path, tiny_tree), tmp_path / "r", "--workers", workers)
    assert e.value.code == 2


def test_sigterm_of_the_sweep_stops_its_runs_and_a_rerun_finishes_them(tmp_path, tiny_tree):
    """`kill <sweep pid>` must not leave orphan runs training on; the rerun resumes them."""
    import subprocess
    import sys

    from harness.sweep.state import pid_alive

    path, results = make_sweep(tmp_path, tiny_tree, name="term", epochs=60), tmp_path / "results"
    folder = results / "term"
    proc = subprocess.Popen([sys.executable, "-m", "harness.sweep", str(path), "--results", str(results),
                             "--workers", "2"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    pids, deadline = [], time.monotonic() + 300
    while not pids and time.monotonic() < deadline and proc.poll() is None:
        statuses = [read_status(r.parent) for r in folder.glob("*/status.json")] if folder.exists() else []
        pids = [s["pid"] for s in statuses if s and s.get("state") == "running" and s.get("epoch", 0) >= 1]
        time.sleep(0.01)
    assert pids, "no run reached epoch 1"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 130
    assert "rerun the same command to resume" in proc.stderr.read()
    deadline = time.monotonic() + 20
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(pid_alive(pid) for pid in pids)
    assert run_sweep(path, results, "--workers", "2") == 0
    assert all(read_status(r.parent)["state"] == "done" for r in folder.glob("*/status.json"))


def test_divergence_and_failure_reasons_are_in_status_and_runs_csv(tmp_path, tiny_tree, capsys):
    """Issue 21.5: a diverged run's reason (step, loss terms) shows in ``--status`` and in
    runs.csv's ``reason`` column, as a failed run's type and message do."""
    tiny_tree["method"] = {"name": "none"}
    path = make_sweep(tmp_path, tiny_tree, name="reasons", grid={"optim.lr": [1e-3, 1e30]}, seeds=(0,))
    results = tmp_path / "results"
    assert run_sweep(path, results, "--executor", "debug") != 2
    capsys.readouterr()
    assert run_sweep(path, results, "--status") == 0
    out = capsys.readouterr().out
    assert any("diverged: non-finite loss at step" in line for line in out.splitlines())
    runs = pd.read_csv(results / "reasons" / "runs.csv").set_index("status")
    assert runs.loc["diverged", "reason"].startswith("non-finite loss at step")
    assert runs["reason"].isna().tolist() == [s != "diverged" for s in runs.index]
