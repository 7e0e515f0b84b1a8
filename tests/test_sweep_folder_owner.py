"""A sweep folder belongs to one sweep definition at a time (issue 21.4), and rerunning a
finished sweep writes nothing (issue 18.8: following the README left `git status` dirty)."""

from __future__ import annotations

import copy

import yaml

from harness.sweep import load_sweep
from harness.sweep.__main__ import main
from harness.sweep.owner import own_folder


def make_sweep(tmp_path, tiny_tree, name="owned", seeds=(0, 1)):
    base = copy.deepcopy(tiny_tree)
    base["train"].update(epochs=1, num_threads=1)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": base, "grid": {"seed": list(seeds)}}, sort_keys=False))
    return path


def files(folder) -> dict:
    """Every file under ``folder`` (but the git-ignored locks) -> (content, mtime)."""
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".lock"}


def test_a_second_definition_of_a_running_sweep_is_refused(tmp_path, tiny_tree, capsys):
    path, results = make_sweep(tmp_path, tiny_tree), tmp_path / "results"
    folder = results / "owned"
    running = load_sweep(path, [])
    with own_folder(folder, running, []):  # the first sweep, still running (another open file holds the lock)
        code = main([str(path), "--results", str(results), "--executor", "debug", "--set", "optim.lr=0.01"])
        err = capsys.readouterr().err
        assert code == 4
        assert err.count("\n") == 1 and err.startswith(f"{folder}: another definition of sweep 'owned' is running")
        assert f"{path} (pid " in err
        assert not (folder / "sweep.json").exists() and [p.name for p in folder.iterdir()] == [".lock"]
        # the same definition may run beside it: the runs' own locks keep them apart
        assert main([str(path), "--results", str(results), "--executor", "debug"]) == 0
    capsys.readouterr()
    # once the first has ended, the folder is free for another definition
    assert main([str(path), "--results", str(results), "--executor", "debug", "--set", "optim.lr=0.01"]) == 0


def test_rerunning_a_finished_sweep_writes_nothing(tmp_path, tiny_tree, capsys):
    path, results = make_sweep(tmp_path, tiny_tree), tmp_path / "results"
    assert main([str(path), "--results", str(results), "--executor", "debug"]) == 0
    before = files(results)
    assert "owned/sweep.json" in before and "owned/runs.csv" in before
    assert main([str(path), "--results", str(results), "--executor", "debug"]) == 0
    after = files(results)
    assert [k for k in after if after[k] != before.get(k)] == []
