"""The run folder (harness/run_folder.py): one owner of its layout and "same config?" check,
the lock that harness.train takes, refusal of folders that are not runs, recovery of broken
files, and environment errors as one line (issue 7, items 1, 6, 7 and 9)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from harness.atomic import read_jsonl
from harness.config import config_from_dict, run_id
from harness.run_folder import (
    NotARunFolder, RunFolder, check_run_path, read_metrics, read_status, run_lock, same_config,
)
from harness.train import main as train_main
from harness.train import train_run
from harness.trainer import Trainer
from test_trainer import interrupt_after_epoch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TIME_KEYS = {"epoch_time_s", "eval_time_s"}


def metrics_of(run):
    return [{k: v for k, v in r.items() if k not in TIME_KEYS} for r in read_jsonl(run / "metrics.jsonl")]


def weights_of(run):
    return torch.load(run / "checkpoint.pt", weights_only=True)["model"]


def same_weights(a, b):
    wa, wb = weights_of(a), weights_of(b)
    return all(torch.equal(wa[k], wb[k]) for k in wa)


# the one interrupt helper lives in test_trainer
train_until = interrupt_after_epoch


@pytest.fixture
def straight(tmp_path, tiny_tree):
    run = tmp_path / "straight"
    assert train_run(config_from_dict(tiny_tree), run) == "done"
    return run


# ---------------------------------------------------------------------------- item 1


def test_one_owner_of_the_run_folder():
    """read_status, the lock and the file names exist once; train, sweep and collect use them."""
    import harness.collect
    import harness.sweep.state
    import harness.train
    from harness import run_folder

    assert harness.train.read_status is run_folder.read_status
    assert harness.sweep.state.read_status is run_folder.read_status
    assert harness.sweep.state.run_lock is run_folder.run_lock
    assert harness.sweep.state.CONFIG == harness.collect.CONFIG == run_folder.CONFIG
    for path in ["harness/train.py", "harness/trainer.py", "harness/sweep/engine.py", "harness/sweep/state.py",
                 "harness/collect.py", "harness/figures/results.py"]:
        text = (ROOT / path).read_text()
        assert '"status.json"' not in text and "def read_status" not in text, path
        assert "config_from_dict(stored)" not in text and ".to_dict() !=" not in text, path


def test_execution_only_fields_are_ignored_by_every_same_config_check(tmp_path, tiny_tree, monkeypatch):
    """train.num_threads / train.progress say how a run executes, not what it computes: the
    run folder, the checkpoint and the sweep engine all accept the same run with others."""
    cfg = config_from_dict(tiny_tree)
    train_until(cfg, tmp_path / "run", 2, monkeypatch)
    other = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, num_threads=1, progress="on"))
    assert same_config(cfg.to_dict(), other) and run_id(cfg) == run_id(other)
    assert train_run(other, tmp_path / "run") == "done"  # config.json and checkpoint.pt accepted
    assert not same_config(cfg.to_dict(), dataclasses.replace(cfg, seed=3))
    assert not same_config({"seed": "x"}, cfg) and not same_config(None, cfg)


def test_import_walk_no_module_below_the_sweep_layer_imports_it():
    """Layers: run folder < trainer/train < collect/figures < sweep (stated import by import in
    tests/test_layers.py); here at run time: collect / figures load no scheduler code, no torch."""
    code = ("import sys, harness.collect, harness.figures, harness.figures.results, harness.figures.render, "
            "harness.run_folder\n"
            "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('submitit', 'torch', 'tools') "
            "or m.startswith('harness.sweep'))\n"
            "print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT).stdout.strip()
    assert out == "[]"


# ---------------------------------------------------------------------------- item 6


def test_out_into_a_folder_that_is_not_a_run_is_refused(tmp_path, tiny_tree, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.jsonl").write_text("my own notes\n")
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_tree))
    assert train_main([str(config), "--out", str(mine)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "is not a run folder (it holds metrics.jsonl and no config.json)" in err
    assert (mine / "metrics.jsonl").read_text() == "my own notes\n" and sorted(os.listdir(mine)) == ["metrics.jsonl"]
    # an empty folder, a new one, and a run folder are fine
    check_run_path(tmp_path / "empty")
    (tmp_path / "empty").mkdir()
    check_run_path(tmp_path / "empty")


def test_a_second_training_process_on_the_same_folder_does_nothing(tmp_path, tiny_tree, capsys):
    """harness.train takes the lock the sweep takes: a second process on the same --out
    returns at once (exit 4) and the first one's metrics are not duplicated."""
    cfg = config_from_dict(tiny_tree)
    run = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_tree))
    with run_lock(run) as held:  # another process training this folder (flock is per open file)
        assert held
        assert train_run(cfg, run) == "running"
        assert train_main([str(config), "--out", str(run)]) == 4
    assert "another process is training this run" in capsys.readouterr().err
    assert not (run / "metrics.jsonl").exists() and not (run / "status.json").exists()
    assert train_run(cfg, run) == "done"
    assert [r["epoch"] for r in read_jsonl(run / "metrics.jsonl")] == [1, 2, 3, 4]


# ---------------------------------------------------------------------------- item 7


def test_a_cut_off_checkpoint_falls_back_to_the_previous_one(tmp_path, tiny_tree, straight, monkeypatch, capsys):
    cfg = config_from_dict(tiny_tree)
    run = tmp_path / "run"
    train_until(cfg, run, 3, monkeypatch)
    assert (run / "checkpoint.prev.pt").exists()  # epoch 2, kept when epoch 3's was written
    data = (run / "checkpoint.pt").read_bytes()
    (run / "checkpoint.pt").write_bytes(data[: len(data) // 2])
    assert train_run(cfg, run) == "done"
    err = capsys.readouterr().err
    assert "checkpoint.pt: unreadable" in err and "resumed from checkpoint.prev.pt (epoch 2)" in err
    assert read_status(run)["notices"] and "Traceback" not in err
    assert metrics_of(run) == metrics_of(straight) and same_weights(run, straight)


def test_no_readable_checkpoint_restarts_the_run_with_a_notice(tmp_path, tiny_tree, straight, monkeypatch, capsys):
    cfg = config_from_dict(tiny_tree)
    run = tmp_path / "run"
    train_until(cfg, run, 3, monkeypatch)
    (run / "checkpoint.pt").write_bytes(b"\0" * 100)
    (run / "checkpoint.prev.pt").unlink()
    assert train_run(cfg, run) == "done"
    err = capsys.readouterr().err.strip().splitlines()
    assert any("no earlier checkpoint can be read; the run restarts from epoch 0" in line for line in err)
    assert metrics_of(run) == metrics_of(straight) and same_weights(run, straight)


def test_a_torn_last_metrics_line_is_dropped_on_resume(tmp_path, tiny_tree, straight, monkeypatch, capsys):
    cfg = config_from_dict(tiny_tree)
    run = tmp_path / "run"
    train_until(cfg, run, 2, monkeypatch)
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"epoch": 3, "lo')  # a write cut off by the kill
    assert read_metrics(run / "metrics.jsonl").torn_last
    assert train_run(cfg, run) == "done"
    assert "metrics.jsonl: last line cut off" in capsys.readouterr().err
    assert metrics_of(run) == metrics_of(straight)


def test_a_finished_run_with_unreadable_files_is_never_reset(tmp_path, tiny_tree, straight, capsys):
    cfg = config_from_dict(tiny_tree)
    run = tmp_path / run_id(cfg)
    assert train_run(cfg, run) == "done"
    before = metrics_of(run)
    (run / "status.json").write_text('{"state": "do')
    (run / "config.json").write_text("{")
    assert train_run(cfg, run) == "done"  # rebuilt from the checkpoint: no epoch trained again
    assert read_status(run)["state"] == "done" and metrics_of(run) == before
    assert json.loads((run / "config.json").read_text()) == cfg.to_dict()
    err = capsys.readouterr().err
    assert "config.json: unreadable; rewritten (the folder is named after this run's id)" in err
    assert "status.json: unreadable; rebuilt" in err
    # a folder that shows nothing of this run is refused rather than overwritten
    other = tmp_path / "other"
    train_run(dataclasses.replace(cfg, seed=7), other)
    (other / "config.json").write_text("{")
    with pytest.raises(Exception, match="unreadable, and nothing in .* shows it held this run"):
        train_run(cfg, other)


def test_temporary_files_of_killed_writes_are_removed(tmp_path, tiny_tree, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / ".metrics.jsonl.abc123.tmp").write_text('{"epoch": 1')
    (run / ".checkpoint.pt.xyz.tmp").write_bytes(b"\0")
    assert train_run(config_from_dict(tiny_tree), run) == "done"
    assert not list(run.glob(".*.tmp"))
    assert "removed 2 temporary file(s) of interrupted writes" in capsys.readouterr().err


def test_read_metrics_counts_every_kind_of_damage(tmp_path):
    path = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"epoch": e}) for e in (0, 1, 2, 5)]
    lines.insert(2, "garbage")
    path.write_text("\n".join(lines) + '\n{"epoch": 6,')
    m = read_metrics(path)
    assert [r["epoch"] for r in m.rows] == [0, 1, 2, 5]
    assert m.torn_last and m.bad_lines == [3] and m.missing_epochs == [3, 4]
    assert m.problems == ["last line cut off", "unreadable line 3", "2 epochs missing (3-4)"]
    assert read_metrics(tmp_path / "absent.jsonl").rows == []


# ---------------------------------------------------------------------------- item 9


def test_out_path_that_is_a_file_is_one_line(tmp_path, tiny_tree, capsys):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny_tree))
    (tmp_path / "afile").write_text("x")
    assert train_main([str(config), "--out", str(tmp_path / "afile")]) == 2
    assert capsys.readouterr().err.strip() == f"error: {tmp_path / 'afile'} is a file, not a run folder; choose a folder path"
    with pytest.raises(NotARunFolder):
        check_run_path(tmp_path / "afile")
    assert train_main([str(config), "--out", str(tmp_path / "afile" / "run")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "a path component is a file" in err


def _mount_tmpfs(path: Path, options: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        return False
    return subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True).returncode == 0


@pytest.mark.parametrize("kind", ["full", "read-only"])
def test_a_full_or_read_only_disk_is_one_line(tmp_path, tiny_tree, kind):
    """A real small (or read-only) file system (tmpfs; needs root, skipped otherwise)."""
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "size=64k" if kind == "full" else "size=1m,ro"):
        pytest.skip("mounting a tmpfs needs root")
    try:
        tiny_tree["model"]["hidden"] = [256, 256]  # a checkpoint larger than the disk
        config = tmp_path / "run.yaml"
        config.write_text(yaml.safe_dump(tiny_tree))
        proc = subprocess.run([sys.executable, "-m", "harness.train", str(config), "--out", str(disk / "run")],
                              capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
                              cwd=ROOT, timeout=300)
        lines = (proc.stdout + proc.stderr).strip().splitlines()
        assert proc.returncode == 1 and len(lines) == 1 and "Traceback" not in lines[0], lines
        want = "no space left on device" if kind == "full" else "read-only file system"
        assert want in lines[0] and "unexpected pos" not in lines[0]
    finally:
        subprocess.run(["umount", str(disk)], check=False)


def test_ctrl_c_while_a_sweep_prepares_its_folders_is_one_line(tmp_path, monkeypatch, capsys):
    import harness.sweep.__main__ as sweep_main

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(sweep_main, "prepare", interrupted)
    code = sweep_main.main([str(ROOT / "sweeps" / "synthetic_latent.yaml"), "--results", str(tmp_path)])
    assert code == 130
    assert capsys.readouterr().err.strip() == "interrupted: rerun the same command to resume"


def test_a_results_path_that_is_a_file_is_one_line_for_a_sweep(tmp_path, capsys):
    from harness.sweep.__main__ import main

    (tmp_path / "results").write_text("not a folder")
    code = main([str(ROOT / "sweeps" / "synthetic_latent.yaml"), "--results", str(tmp_path / "results")])
    err = capsys.readouterr().err.strip()
    assert code == 1 and err.count("\n") == 0 and err.startswith("error: ") and "Traceback" not in err


def test_committed_results_keep_their_run_ids():
    """The run id (the folder name) of every committed run still equals the hash of its
    config.json as the harness resolves it today: refactoring configs must not move results."""
    folders = sorted(p.parent for p in ROOT.glob("results/*/*/config.json"))
    assert folders, "no committed run folders found"
    for folder in folders:
        cfg = config_from_dict(json.loads((folder / "config.json").read_text()))
        assert run_id(cfg) == folder.name, folder


# ---------------------------------------------------------------------------- issue 18, item 4


def test_the_trainer_only_loops_and_touches_no_files():
    """The run lifecycle in one room: build_run builds, the trainer loops, the run folder
    owns the files (checkpoint rotation and recovery); no function in trainer.py or train.py
    over 60 lines."""
    import ast

    for rel in ("harness/trainer.py", "harness/train.py"):
        tree = ast.parse((ROOT / rel).read_text())
        long = [(n.name, n.end_lineno - n.lineno + 1) for n in ast.walk(tree)
                if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 60]
        assert long == [], rel
    tree = ast.parse((ROOT / "harness/trainer.py").read_text())
    file_calls = {"open", "save", "load", "unlink", "replace", "rename", "write_text", "write_bytes",
                  "atomic_write", "write_json", "mkdir"}
    called = {n.func.attr if isinstance(n.func, ast.Attribute) else getattr(n.func, "id", "")
              for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert called & file_calls == set()


# ---------------------------------------------------------------------------- issue 21, items 1-2


def _kill_at_step(cfg, run_dir, step, monkeypatch):
    """Train until optimiser step ``step`` is about to run, then 'kill' the process."""
    from test_trainer import Killed

    original = Trainer.train_step

    def dying_step(self, x):
        if self.step == step:
            raise Killed
        return original(self, x)

    with monkeypatch.context() as m:
        m.setattr(Trainer, "train_step", dying_step)
        with pytest.raises(Killed):
            train_run(cfg, run_dir)


def _damage_metrics(path: Path, how: str, rng) -> None:
    lines = path.read_text().splitlines(keepends=True)
    if how == "cut_last":
        lines[-1] = lines[-1][: rng.randrange(1, len(lines[-1]) - 1)]
    elif how == "delete_last":
        del lines[-1]
    else:  # delete a line in the middle
        del lines[rng.randrange(0, len(lines) - 1)]
    path.write_text("".join(lines))


@pytest.mark.parametrize("how", ["cut_last", "delete_last", "delete_middle"])
def test_a_lost_metrics_line_is_retrained_never_skipped(tmp_path, tiny_tree, straight, monkeypatch, capsys, how):
    """Kill at random steps, cut or delete metrics lines, rerun: the run ends with every
    epoch's line and the weights of an uninterrupted run (the resume point is the last intact
    line: checkpoint.prev.pt, or a restart when no checkpoint that old is kept)."""
    import random

    cfg = config_from_dict(tiny_tree)
    rng = random.Random(f"21.1-{how}")
    for trial in range(3):
        run = tmp_path / f"run{trial}"
        low = 11 if how == "delete_middle" else 6  # at least 2 (middle: 3) epochs logged
        _kill_at_step(cfg, run, rng.randrange(low, 20), monkeypatch)
        _damage_metrics(run / "metrics.jsonl", how, rng)
        assert train_run(cfg, run) == "done"
        assert metrics_of(run) == metrics_of(straight) and same_weights(run, straight), (trial, how)
    assert "metrics" in capsys.readouterr().err  # a notice names what was lost


@pytest.mark.parametrize("damage", ["checkpoint", "metrics"])
def test_a_damaged_finished_run_is_noticed_and_repaired(tmp_path, tiny_tree, straight, capsys, damage):
    """A finished run records the size and SHA-256 of its final checkpoint and metrics; a
    rerun that finds either changed says so in one line and retrains what is missing."""
    cfg = config_from_dict(tiny_tree)
    run = tmp_path / "run"
    assert train_run(cfg, run) == "done"
    files = read_status(run)["files"]
    assert files["checkpoint.pt"]["size"] == (run / "checkpoint.pt").stat().st_size
    if damage == "checkpoint":
        (run / "checkpoint.pt").write_bytes((run / "checkpoint.pt").read_bytes()[:100])
    else:
        (run / "metrics.jsonl").write_text((run / "metrics.jsonl").read_text()[:-20])
    capsys.readouterr()
    assert train_run(cfg, run) == "done"
    err = capsys.readouterr().err
    assert f"{damage}" in err and "changed since the run finished" in err
    assert metrics_of(run) == metrics_of(straight) and same_weights(run, straight)
    assert read_status(run)["files"] == RunFolder(run).record_final()  # the repaired files are recorded
    assert train_run(cfg, run) == "done" and capsys.readouterr().err == ""  # verified: nothing to say
