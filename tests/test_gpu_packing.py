"""Several runs per GPU with the local executor: each run gets a GPU slot through
CUDA_VISIBLE_DEVICES (checked on CPU: the tiny runs train on the CPU and record the variable
they were given in status.json)."""

from __future__ import annotations

import collections
import copy

import pytest
import yaml

from harness.sweep.__main__ import main
from harness.sweep.executors import gpu_slots
from harness.sweep.state import read_status


def make_sweep(tmp_path, tiny_tree, **extra):
    base = copy.deepcopy(tiny_tree)
    base["train"].update(epochs=1, num_threads=1)
    doc = {"name": "pack", "base": base, "grid": {"seed": [0, 1, 2, 3]}, **extra}
    path = tmp_path / "pack.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def gpus_used(results) -> collections.Counter:
    folders = [p.parent for p in (results / "pack").glob("*/status.json")]
    assert len(folders) == 4
    return collections.Counter(read_status(f)["cuda_visible_devices"] for f in folders)


def test_slots_interleave_gpus():
    assert gpu_slots([0, 1], 2) == ["0", "1", "0", "1"]
    assert gpu_slots([3], 3) == ["3", "3", "3"]
    assert gpu_slots([], 4) == []


def test_sweep_block_places_runs_on_gpu_slots(tmp_path, tiny_tree):
    path = make_sweep(tmp_path, tiny_tree, local={"gpus": [0, 1], "workers_per_gpu": 2})
    assert main([str(path), "--results", str(tmp_path / "r")]) == 0
    assert gpus_used(tmp_path / "r") == {"0": 2, "1": 2}  # 4 slots, 4 runs started at once


def test_command_line_overrides_the_sweep_block(tmp_path, tiny_tree):
    path = make_sweep(tmp_path, tiny_tree, local={"gpus": [0, 1], "workers_per_gpu": 2})
    assert main([str(path), "--results", str(tmp_path / "r"), "--gpus", "5", "--workers-per-gpu", "2"]) == 0
    assert gpus_used(tmp_path / "r") == {"5": 4}


@pytest.mark.parametrize("block, message", [
    ({"workers_per_gpu": 0}, "local.workers_per_gpu: got 0; allowed: an integer >= 1"),
    ({"gpus": [0, 0]}, "local.gpus: got [0, 0]; allowed: null or a list of distinct GPU indices >= 0"),
    ({"gpu": [0]}, "local.gpu: unknown key (did you mean 'gpus'?)"),
])
def test_a_bad_local_block_is_one_line_exit_2(tmp_path, tiny_tree, capsys, block, message):
    path = make_sweep(tmp_path, tiny_tree, local=block)
    assert main([str(path), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_bad_gpu_list_is_a_usage_error(tmp_path, tiny_tree):
    with pytest.raises(SystemExit) as e:
        main([str(make_sweep(tmp_path, tiny_tree)), "--gpus", "0,x"])
    assert e.value.code == 2


def test_a_slurm_group_job_trains_its_runs_at_once_on_the_jobs_gpus(tmp_path, tiny_tree, monkeypatch):
    """What an array job of ``slurm.runs_per_task: 3`` runs on its node: three runs, each in
    its own process, spread over the job's GPUs (here CUDA_VISIBLE_DEVICES=3,5; CPU runs)."""
    import json

    from harness.config import config_from_dict
    from harness.sweep.jobs import RunGroupJob

    tiny_tree["train"].update(epochs=1, num_threads=1)
    folders = []
    for seed in range(3):
        tiny_tree["seed"] = seed
        folder = tmp_path / f"run{seed}"
        folder.mkdir()
        (folder / "config.json").write_text(json.dumps(config_from_dict(tiny_tree).to_dict()))
        folders.append(str(folder))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")
    monkeypatch.chdir(tmp_path)
    assert RunGroupJob()(folders) == ["done"] * 3
    assert [read_status(f)["cuda_visible_devices"] for f in folders] == ["3", "5", "3"]
    requeued = RunGroupJob().checkpoint(folders)
    assert isinstance(requeued.function, RunGroupJob) and requeued.args == (folders,)


def test_slurm_packing_and_ddp_do_not_mix(tmp_path, tiny_tree):
    from harness.sweep.spec import SweepError, load_sweep

    path = make_sweep(tmp_path, tiny_tree, slurm={"runs_per_task": 2, "tasks_per_run": 2})
    with pytest.raises(SweepError, match="slurm.runs_per_task: got 2; allowed: 1 when slurm.tasks_per_run > 1"):
        load_sweep(path)
