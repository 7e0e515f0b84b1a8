"""Aggregation of a sweep folder: runs.csv / curves.csv, and partial or corrupt run folders
reported (one line each) and skipped."""

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


def test_collect_reports_and_skips_unreadable_runs(sweep_folder, capsys):
    runs, curves = collect(sweep_folder)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 5, err
    for needle in ["etc", f"{IDS['badstatus']}/status.json", f"{IDS['truncated']}/metrics.jsonl: line 2",
                   f"{IDS['noconfig']}/config.json", f"{IDS['badline']}/metrics.jsonl: line 1 has no integer 'epoch'"]:
        assert sum(needle in line for line in err) == 1, (needle, err)

    assert list(runs.columns[:8]) == ["id", "name", *VARIED, "status", "epochs", "wall_time_s"]
    assert list(runs["name"]) == ["done", "diverged", "pending", "started"]
    by_name = runs.set_index("name")
    assert list(by_name["status"]) == ["done", "diverged", "pending", "pending"]
    assert list(by_name["epochs"]) == [2, 1, 0, 0]
    assert by_name.loc["done", "wall_time_s"] == 12.5
    assert by_name.loc["done", "loss"] == pytest.approx(1 / 3) and by_name.loc["done", "fid"] == 40.0
    assert by_name.loc["done", "step"] == 10
    assert pd.isna(by_name.loc["diverged", "fid"]) and pd.isna(by_name.loc["diverged", "method.tau"])
    assert by_name.loc["done", "method.tau"] == 0.1 and by_name.loc["diverged", "method.name"] == "mmd"

    assert list(curves.columns[:6]) == ["id", "name", *VARIED, "epoch"]
    assert list(zip(curves["name"], curves["epoch"])) == [("done", 0), ("done", 1), ("done", 2), ("diverged", 1)]
    assert list(curves["fid"].isna()) == [False, True, False, True]
    assert set(curves.columns) == {"id", "name", *VARIED, "epoch", "step", "loss", "fid"}


def test_cli_writes_both_tables(sweep_folder, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0  # by name under ./results
    out = capsys.readouterr().out
    assert "4 runs" in out and "4 rows" in out
    runs = pd.read_csv(sweep_folder / "runs.csv")
    curves = pd.read_csv(sweep_folder / "curves.csv")
    assert len(runs) == 4 and len(curves) == 4
    assert runs.loc[0, "fid"] == 40.0
    assert main([str(sweep_folder)]) == 0  # by folder


def test_missing_manifest_and_bad_names(tmp_path, capsys):
    assert main(["nothing", "--results", str(tmp_path)]) == 2
    assert "sweep.json: missing or unreadable (run the sweep first)" in capsys.readouterr().err
    assert main(["../up", "--results", str(tmp_path)]) == 2
    assert "is not allowed" in capsys.readouterr().err
    assert not (tmp_path / "nothing").exists()
