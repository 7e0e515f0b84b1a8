"""Sweep files: grid expansion (products, paired axes, cases, per-method overrides, seeds),
run identity, and the slurm block."""

from __future__ import annotations

import copy
import itertools
import pickle

import pytest
import yaml

from harness.config import same_run, config_fingerprint, config_from_dict
from harness.sweep import SweepError, load_sweep
from harness.sweep.identity import format_value, run_id, run_name, short_labels


def write_sweep(tmp_path, doc: dict, name: str = "s.yaml"):
    (tmp_path / "pyproject.toml").touch()  # marks the project root (base_config confinement)
    folder = tmp_path / "sweeps"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def base_without_method_keys(tiny_tree) -> dict:
    base = copy.deepcopy(tiny_tree)
    base["method"] = {"weight": 1.0}
    return base


def test_grid_is_the_cartesian_product_in_file_order(tmp_path, tiny_tree):
    doc = {"name": "g", "base": tiny_tree,
           "grid": {"method.tau": [0.05, 0.1], "model.latent_dim": [4, 8, 16], "seed": [0, 1]}}
    sweep = load_sweep(write_sweep(tmp_path, doc))
    assert len(sweep.runs) == 12
    got = [(r.config.method.params.tau, r.config.model.latent_dim, r.config.seed) for r in sweep.runs]
    assert got == list(itertools.product([0.05, 0.1], [4, 8, 16], [0, 1]))
    assert sweep.name_keys == ["method.tau", "model.latent_dim", "seed"]
    assert sweep.runs[0].name == "tau=0.05,latent_dim=4,seed=0"
    assert sweep.runs[-1].varied == {"method.tau": 0.1, "model.latent_dim": 16, "seed": 1}
    # every other key comes from the base
    assert all(r.config.train.epochs == tiny_tree["train"]["epochs"] for r in sweep.runs)
    assert len({r.id for r in sweep.runs}) == 12


def test_paired_axes_vary_together_and_per_method_applies_by_name(tmp_path, tiny_tree):
    doc = {"name": "p", "base": base_without_method_keys(tiny_tree),
           "paired": [{"method.name": ["moca", "mmd"], "method.weight": [100, 10]}],
           "grid": {"seed": [0, 1, 2]},
           "per_method": {"moca": {"method.tau": 0.3, "method.queue_size": 40},
                          "mmd": {"method.kernel": "rbf"}}}
    sweep = load_sweep(write_sweep(tmp_path, doc))
    assert [(r.config.method.name, r.config.method.weight, r.config.seed) for r in sweep.runs] == [
        ("moca", 100.0, 0), ("moca", 100.0, 1), ("moca", 100.0, 2),
        ("mmd", 10.0, 0), ("mmd", 10.0, 1), ("mmd", 10.0, 2)]
    moca, mmd = sweep.runs[0], sweep.runs[3]
    assert (moca.config.method.params.tau, moca.config.method.params.queue_size) == (0.3, 40)
    assert mmd.config.method.params.kernel == "rbf" and not hasattr(mmd.config.method.params, "tau")
    assert sweep.varied_keys == ["method.name", "method.weight", "seed", "method.tau",
                                 "method.queue_size", "method.kernel"]
    assert moca.name == "method=moca,weight=100,seed=0"  # names use the axis keys only
    assert moca.varied["method.tau"] == 0.3 and "method.tau" not in mmd.varied
    assert mmd.varied["method.kernel"] == "rbf"


def test_cases_are_one_axis_and_their_values_beat_per_method(tmp_path, tiny_tree):
    doc = {"name": "c", "base": base_without_method_keys(tiny_tree),
           "cases": [{"method.name": "moca"}, {"method.name": "moca", "method.tau": 0.7},
                     {"method.name": "swd", "method.weight": 5}],
           "grid": {"seed": [3]},
           "per_method": {"moca": {"method.tau": 0.25}}}
    sweep = load_sweep(write_sweep(tmp_path, doc))
    assert len(sweep.runs) == 3
    assert sweep.runs[0].config.method.params.tau == 0.25
    assert sweep.runs[1].config.method.params.tau == 0.7
    assert (sweep.runs[2].config.method.name, sweep.runs[2].config.method.weight) == ("swd", 5.0)
    assert all(r.config.seed == 3 for r in sweep.runs)


def test_base_config_file_and_set_overrides(tmp_path, tiny_tree):
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "tiny.yaml").write_text(yaml.safe_dump(tiny_tree))
    doc = {"name": "b", "base_config": "../configs/tiny.yaml", "grid": {"seed": [0, 1]},
           "slurm": {"partition": "cpu", "time": 30}}
    path = write_sweep(tmp_path, doc)
    sweep = load_sweep(path, ["train.epochs=2", "optim.lr=5e-4", "slurm.time=90", "slurm.mem_gb=3.5"])
    assert all(r.config.train.epochs == 2 and r.config.optim.lr == 5e-4 for r in sweep.runs)
    assert (sweep.slurm.partition, sweep.slurm.time, sweep.slurm.mem_gb) == ("cpu", 90, 3.5)


def test_ids_are_stable_and_shared_across_sweeps(tmp_path, tiny_tree):
    a = write_sweep(tmp_path, {"name": "a", "base": tiny_tree, "grid": {"seed": [0, 1]}}, "a.yaml")
    b = write_sweep(tmp_path, {"name": "b", "base": tiny_tree,
                               "grid": {"seed": [1, 2], "method.tau": [0.2]}}, "b.yaml")
    ids_a = {r.config.seed: r.id for r in load_sweep(a).runs}
    ids_b = {r.config.seed: r.id for r in load_sweep(b).runs}
    assert ids_a == {r.config.seed: r.id for r in load_sweep(a).runs}  # same sweep twice
    assert ids_a[1] == ids_b[1]  # the same run in two sweeps (tau 0.2 is the base's value)
    assert len({ids_a[0], ids_a[1], ids_b[2]}) == 3
    # the id is the config's fingerprint; execution-only fields do not change it
    cfg = config_from_dict(dict(tiny_tree, seed=0))
    assert ids_a[0] == run_id(cfg) == config_fingerprint(config_from_dict(
        dict(tiny_tree, seed=0, train=dict(tiny_tree["train"], progress="auto"))))
    threads = load_sweep(a, ["train.num_threads=3"])
    assert {r.config.seed: r.id for r in threads.runs} == ids_a
    assert threads.runs[0].config.train.num_threads == 3
    # where the data lives, whether it may be downloaded and TensorBoard logging are execution-only
    moved = load_sweep(a, ["data.root=/elsewhere", "data.download=false", "train.tensorboard=true"])
    assert {r.config.seed: r.id for r in moved.runs} == ids_a
    assert same_run(moved.runs[0].config.to_dict(), load_sweep(a).runs[0].config.to_dict())
    other = load_sweep(a, ["train.epochs=5"])
    assert not set(r.id for r in other.runs) & set(ids_a.values())


def test_names_and_labels():
    assert short_labels(["method.name", "method.tau", "model.hidden", "model.decoder_hidden"]) == {
        "method.name": "method", "method.tau": "tau", "model.hidden": "hidden",
        "model.decoder_hidden": "decoder_hidden"}
    assert short_labels(["data.name", "method.name"]) == {"data.name": "data", "method.name": "method"}
    assert short_labels(["eval.seed", "seed"]) == {"eval.seed": "eval.seed", "seed": "seed"}
    assert [format_value(v) for v in (0.1, 1e-5, 144000.0, 0.123456789, True, None, [128, 64])] == [
        "0.1", "1e-05", "144000", "0.123456789", "true", "null", "128x64"]
    assert run_name({"method.name": "moca", "method.tau": 0.1, "seed": 0},
                    ["method.name", "method.tau", "seed", "model.width"]) == "method=moca,tau=0.1,seed=0"


def test_slurm_parameters_render_through_submitit(tmp_path, tiny_tree):
    from submitit.slurm.slurm import _make_sbatch_string

    from harness.sweep.executors import chunks, slurm_parameters

    doc = {"name": "sl", "base": tiny_tree, "grid": {"seed": [0]},
           "slurm": {"partition": "gpu", "time": 120, "gpus_per_node": 1, "cpus_per_task": 4,
                     "mem_gb": 16, "array_parallelism": 2,
                     "extra": {"account": "proj1", "qos": "high", "reservation": "r1"}}}
    sweep = load_sweep(write_sweep(tmp_path, doc))
    params = slurm_parameters(sweep.slurm, sweep.name)
    text = _make_sbatch_string(command="python -u x", folder=tmp_path / "%j", map_count=5, **params)
    for line in ["--partition=gpu", "--time=120", "--gpus-per-node=1", "--cpus-per-task=4", "--mem=16GB",
                 "--array=0-4%2", "--account=proj1", "--qos=high", "--reservation=r1", "--job-name=sl",
                 "--signal=USR2@120", "--nodes=1", "--ntasks-per-node=1"]:
        assert f"#SBATCH {line}\n" in text
    assert chunks(list(range(7)), 3) == [[0, 1, 2], [3, 4, 5], [6]]


def test_max_array_size_reads_scontrol(tmp_path, monkeypatch):
    from harness.sweep.executors import max_array_size

    fake = tmp_path / "bin" / "scontrol"
    fake.parent.mkdir()
    fake.write_text("#!/bin/sh\necho 'MaxArraySize            = 7'\necho 'MaxJobCount = 10000'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake.parent}:/usr/bin:/bin")
    assert max_array_size() == 7


def test_run_job_requeues_itself_with_the_folder_only(tmp_path):
    from submitit.helpers import Checkpointable, DelayedSubmission

    from harness.sweep.jobs import RunJob

    job = RunJob()
    assert isinstance(job, Checkpointable)
    again = job.checkpoint(str(tmp_path))
    assert isinstance(again, DelayedSubmission)
    assert isinstance(again.function, RunJob) and again.function is not job
    assert again.args == (str(tmp_path),) and again.kwargs == {}
    assert vars(again.function) == {}  # no state travels with the requeued job
    blob = pickle.dumps(again.function)
    assert b"harness.sweep.jobs" in blob and len(blob) < 200  # pickled by reference


def test_sweep_error_is_one_line(tmp_path, tiny_tree):
    path = write_sweep(tmp_path, {"name": "e", "base": tiny_tree, "grid": {"method.tau": [0.1, -1.0]}})
    with pytest.raises(SweepError) as err:
        load_sweep(path)
    assert str(err.value) == f"{path}: grid method.tau: got -1.0; allowed: a number > 0"


def test_the_example_of_docs_sweeps_md_is_valid(tmp_path):
    from pathlib import Path

    doc = (Path(__file__).resolve().parent.parent / "docs" / "sweeps.md").read_text()
    example = doc.split("## The sweep file", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    sweep = load_sweep(write_sweep(tmp_path, yaml.safe_load(example)))
    assert sweep.name == "synthetic_methods" and len(sweep.runs) == 12
    assert [r.config.method.name for r in sweep.runs[::3]] == ["moca", "sinkhorn", "swd", "mmd"]
    assert sweep.runs[0].config.method.params.queue_size == 1000
    assert sweep.runs[3].config.method.params.epsilon == 0.1
    assert sweep.slurm.partition == "gpu" and sweep.slurm.gpus_per_node == 1
