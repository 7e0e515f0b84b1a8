"""Aggregation of a sweep folder: runs.csv / curves.csv; partial or corrupt run folders are
reported (one line per file) and kept with what can be read."""

from __future__ import annotations

import json
import socket

import pandas as pd
import pytest

from harness.collect import collect, main

VARIED = ["method.name", "seed", "method.tau"]
IDS = {name: f"{i:012x}" for i, name in enumerate(
    ["done", "diverged", "pending", "started", "badstatus", "truncated", "noconfig", "badline"], start=1)}


def _run(folder, rid, status=None, metrics=None, config=True, raw_metrics=None):
    d = folder / rid
    d.mkdir(parents=True)
    if config:
        (d / "config.json").write_text(json.dumps({"seed": 0}))
    if status is not None:
        (d / "status.json").write_text(status if isinstance(status, str) else json.dumps(status))
    if metrics is not None:
        (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in metrics))
    if raw_metrics is not None:
        (d / "metrics.jsonl").write_text(raw_metrics)
    return d


@pytest.fixture
def sweep_folder(tmp_path):
    folder = tmp_path / "results" / "demo"
    folder.mkdir(parents=True)
    runs = []
    for i, (name, rid) in enumerate(IDS.items()):
        varied = {"method.name": "moca" if i % 2 == 0 else "mmd", "seed": i}
        if i % 2 == 0:
            varied["method.tau"] = 0.1
        runs.append({"id": rid, "name": name, "varied": varied})
    runs.append({"id": "../../etc", "name": "evil", "varied": {}})
    (folder / "sweep.json").write_text(json.dumps(
        {"name": "demo", "sweep_file": "sweeps/demo.yaml", "varied_keys": VARIED, "runs": runs}))
    line = lambda e, **kw: {"epoch": e, "step": 5 * e, "loss": 1.0 / (e + 1), **kw}  # noqa: E731
    _run(folder, IDS["done"], {"state": "done", "wall_time_s": 12.5},
         [line(0, fid=90.0), line(1), line(2, fid=40.0)])
    _run(folder, IDS["diverged"], {"state": "diverged", "wall_time_s": 3.0}, [line(1)])
    # pending: no folder at all
    _run(folder, IDS["started"], None)  # scheduled (config.json written) but never started
    _run(folder, IDS["badstatus"], '{"state": "do', [line(1)])
    _run(folder, IDS["truncated"], {"state": "running", "host": socket.gethostname(), "pid": 999999999},
         raw_metrics=json.dumps(line(1)) + "\n" + '{"epoch": 2, "lo')
    _run(folder, IDS["noconfig"], {"state": "done"}, [line(1)], config=False)
    _run(folder, IDS["badline"], {"state": "done"}, raw_metrics='{"step": 3}\n')
    return folder


def test_collect_reports_broken_runs_and_keeps_them(sweep_folder, capsys):
    """Every run of the manifest gets a row (a sweep of 8 never reads as "5 of 5"); what is
    broken is one stderr line per file and the run's ``problems`` cell; readable lines count."""
    runs, curves = collect(sweep_folder)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5, err
    for needle in ["etc", f"{IDS['badstatus']}/status.json: not a readable JSON object",
                   f"{IDS['truncated']}/metrics.jsonl: last line cut off",
                   f"{IDS['noconfig']}/config.json", f"{IDS['badline']}/metrics.jsonl: unreadable line 1"]:
        assert sum(needle in line for line in err) == 1, (needle, err)

    assert list(runs.columns[:11]) == ["id", "name", *VARIED, "status", "epochs", "wall_time_s", "in_sweep", "warning",
                                       "problems"]
    assert list(runs["name"]) == list(IDS)
    by_name = runs.set_index("name")
    assert list(by_name["status"]) == ["done", "diverged", "pending", "pending", "unreadable", "interrupted",
                                       "done", "done"]
    assert list(by_name["epochs"]) == [2, 1, 0, 0, 1, 1, 1, 0]
    assert by_name["problems"].notna().tolist() == [False, False, False, False, True, True, True, True]
    assert by_name.loc["done", "wall_time_s"] == 12.5
    assert by_name.loc["done", "loss"] == pytest.approx(1 / 3) and by_name.loc["done", "fid"] == 40.0
    assert by_name.loc["done", "step"] == 10
    assert pd.isna(by_name.loc["diverged", "fid"]) and pd.isna(by_name.loc["diverged", "method.tau"])
    assert by_name.loc["done", "method.tau"] == 0.1 and by_name.loc["diverged", "method.name"] == "mmd"

    assert list(curves.columns[:6]) == ["id", "name", *VARIED, "epoch"]
    assert list(zip(curves["name"], curves["epoch"])) == [
        ("done", 0), ("done", 1), ("done", 2), ("diverged", 1), ("badstatus", 1), ("truncated", 1), ("noconfig", 1)]
    assert set(curves.columns) == {"id", "name", *VARIED, "epoch", "step", "loss", "fid"}


def test_lines_missing_in_the_middle_or_at_the_end_are_detected_and_counted(tmp_path, capsys):
    folder = tmp_path / "demo"
    rows = [{"epoch": e, "loss": 1.0} for e in (0, 1, 2, 4, 5, 8)]  # 3, 6, 7 lost
    _run(folder, IDS["done"], {"state": "done", "epoch": 10}, rows)
    (folder / "sweep.json").write_text(json.dumps({"name": "demo", "varied_keys": [],
                                                   "runs": [{"id": IDS["done"], "name": "a", "varied": {}}]}))
    runs, curves = collect(folder)
    problem = runs.loc[0, "problems"]
    assert "3 epochs missing (3, 6-7)" in problem and "2 epochs after epoch 8 missing (status.json says 10)" in problem
    assert len(curves) == 6 and capsys.readouterr().err.count("\n") == 1


def test_collect_asks_no_scheduler(sweep_folder, monkeypatch, tmp_path):
    """A folder submitted to SLURM (jobs.json present) is still read from the disk alone."""
    (sweep_folder / ".submitit").mkdir()
    (sweep_folder / ".submitit" / "jobs.json").write_text(json.dumps({IDS["started"]: "12_3"}))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("squeue", "sacct"):
        (bin_dir / tool).write_text(f"#!/bin/sh\ntouch {tmp_path}/{tool}-called\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{__import__('os').environ['PATH']}")
    runs, _ = collect(sweep_folder)
    assert not list(tmp_path.glob("*-called"))
    assert runs.set_index("name").loc["started", "status"] == "pending"


def test_cli_writes_both_tables(sweep_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0  # by name under ./results
    out = capsys.readouterr().out
    assert "8 runs" in out and "7 rows" in out
    runs = pd.read_csv(sweep_folder / "runs.csv")
    curves = pd.read_csv(sweep_folder / "curves.csv")
    assert len(runs) == 8 and len(curves) == 7
    assert runs.loc[0, "fid"] == 40.0
    assert main([str(sweep_folder)]) == 0  # by folder


def test_missing_manifest_and_bad_names(tmp_path, capsys):
    assert main(["nothing", "--results", str(tmp_path)]) == 2
    assert "sweep.json: missing or unreadable (run the sweep first)" in capsys.readouterr().err
    assert main(["../up", "--results", str(tmp_path)]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
