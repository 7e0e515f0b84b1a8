"""Large sweeps (issue 7, item 10): fast validation, an explicit flag above MAX_RUNS, and the
local executor writing run folders only as runs start."""

from __future__ import annotations

import dataclasses
import time

import pytest
import yaml

from harness.config import EXECUTION_ONLY, config_fingerprint
from harness.sweep import load_sweep
from harness.sweep.__main__ import main
from harness.sweep.engine import prepare
from harness.sweep.identity import run_id
from harness.sweep.spec import MAX_RUNS, SweepError, _Parser
from harness.sweep.state import CONFIG, MANIFEST


def _write(tmp_path, tiny_tree, grid, name="big"):
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"name": name, "base": tiny_tree, "grid": grid}))
    return path


def test_ten_thousand_runs_validate_in_seconds(tmp_path, tiny_tree):
    path = _write(tmp_path, tiny_tree, {"seed": list(range(100)), "method.tau": [0.01 * (i + 1) for i in range(100)]})
    load_sweep(_write(tmp_path, tiny_tree, {"seed": [0, 1]}, "warm"))  # imports, registries
    start = time.process_time()
    sweep = load_sweep(path)
    cpu = time.process_time() - start
    assert len(sweep.runs) == 10_000 and len({r.id for r in sweep.runs}) == 10_000
    assert cpu < 12, f"{cpu:.1f} s of CPU to validate 10,000 runs"  # ~2.5 s here; it was ~32 s


def test_run_ids_are_unchanged_by_the_faster_path(tiny_tree):
    from harness.config import config_from_dict

    tiny_tree["train"]["num_threads"] = 3
    cfg = config_from_dict(tiny_tree)
    train = dataclasses.replace(cfg.train, **EXECUTION_ONLY["train"])
    data = dataclasses.replace(cfg.data, **EXECUTION_ONLY["data"])
    old = config_fingerprint(dataclasses.replace(cfg, train=train, data=data))  # the former run_id
    assert run_id(cfg) == old == run_id(cfg, cfg.to_dict())


def test_a_sweep_above_the_limit_needs_allow_large(tmp_path, capsys, tiny_tree, monkeypatch):
    path = _write(tmp_path, tiny_tree, {"seed": list(range(MAX_RUNS + 1))})
    results = tmp_path / "results"
    assert main([str(path), "--results", str(results), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err == (f"{path}: {MAX_RUNS + 1} runs; allowed: at most {MAX_RUNS} "
                   "(pass --allow-large to run a larger sweep)\n")
    assert not results.exists()

    def no_expansion(*args, **kwargs):
        raise AssertionError("expanded before the size check")

    huge = _write(tmp_path, tiny_tree, {"seed": list(range(1000)), "method.tau": [0.1, 0.2]}, "huge")
    monkeypatch.setattr(_Parser, "expand", no_expansion)
    with pytest.raises(SweepError, match="2000 runs; allowed: at most 1999"):  # refused without expanding
        load_sweep(huge, max_runs=1999)
    monkeypatch.undo()
    assert main([str(path), "--results", str(results), "--dry-run", "--allow-large"]) == 0
    assert f"would start {MAX_RUNS + 1} of {MAX_RUNS + 1} runs" in capsys.readouterr().out


def test_local_executor_writes_a_run_folder_only_when_the_run_starts(tmp_path, tiny_tree):
    sweep = load_sweep(_write(tmp_path, tiny_tree, {"seed": [0, 1, 2]}))
    folder = tmp_path / "results" / "big"
    launches = prepare(sweep, folder, sweep.runs, lazy=True)
    assert (folder / MANIFEST).exists()
    assert not any((launch.folder / CONFIG).exists() for launch in launches)
    launches[1].materialize()
    written = [(launch.folder / CONFIG).exists() for launch in launches]
    assert written == [False, True, False]
    eager = prepare(sweep, tmp_path / "results2" / "big", sweep.runs)
    assert all((launch.folder / CONFIG).exists() for launch in eager)  # slurm / debug: before submission
