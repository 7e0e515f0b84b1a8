"""What a user sees (issue 7, item 11): file modes, git_dirty, earlier runs in runs.csv,
warnings for runs that finish without training, and seeded global RNGs."""

from __future__ import annotations

import os
import random
import stat
import subprocess

import numpy as np
import pytest
import torch
import yaml

from harness.atomic import atomic_write, write_json
from harness.config import config_from_dict
from harness.health import flat_loss, latent_collapse
from harness.provenance import git_state


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o002, 0o664), (0o077, 0o600)])
def test_atomic_writes_respect_the_umask(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        write_json(tmp_path / "status.json", {"state": "done"})
        atomic_write(tmp_path / "checkpoint.pt", lambda f: f.write(b"\0"), mode="wb")
    finally:
        os.umask(old)
    for name in ("status.json", "checkpoint.pt"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == mode, name


def _git(root, *args):
    subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=root, check=True,
                   capture_output=True)


def test_git_dirty_counts_untracked_files_that_can_change_numbers(tmp_path):
    _git(tmp_path, "init", "-q")
    (tmp_path / ".gitignore").write_text("data/\n")
    (tmp_path / "train.py").write_text("x = 1\n")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-q", "-m", "init")
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "runs.csv").write_text("id\n")  # results, notes, ignored data: not code
    (tmp_path / "notes.md").write_text("# notes\n")
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.bin").write_bytes(b"\0")
    assert git_state(tmp_path)["git_dirty"] is False
    (tmp_path / "sweeps").mkdir()
    (tmp_path / "sweeps" / "new.yaml").write_text("name: new\n")  # a new, uncommitted sweep file
    state = git_state(tmp_path)
    assert state["git_dirty"] is True and state["git_dirty_files"] == ["sweeps/new.yaml"]


# --------------------------------------------------------------------------- runs.csv


def test_runs_of_an_earlier_expansion_stay_in_runs_csv(tmp_path, tiny_tree):
    """A sweep rerun with another --set writes a manifest of the new runs only; the earlier
    runs' folders are still collected, marked in_sweep = False, and figures skip them."""
    from harness.collect import write_collection
    from harness.figures.results import load_sweep_results
    from harness.sweep import load_sweep
    from harness.sweep.engine import write_manifest
    from harness.sweep.identity import run_dir
    from harness.train import train_run

    tiny_tree["train"]["epochs"] = 1
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": tiny_tree, "grid": {"seed": [0]}}))
    folder = tmp_path / "results" / "s"
    first = load_sweep(path)
    second = load_sweep(path, ["train.epochs=2"])
    for sweep in (first, second):
        write_manifest(sweep, folder)
        (run,) = sweep.runs
        assert train_run(run.config, run_dir(folder, run.id)) == "done"
    runs, curves = write_collection(folder)
    assert len(runs) == 2
    by_id = runs.set_index("id")
    assert by_id.loc[second.runs[0].id, "in_sweep"] and not by_id.loc[first.runs[0].id, "in_sweep"]
    assert set(by_id["name"]) == {"seed=0"} and set(by_id["status"]) == {"done"}
    assert set(curves["id"]) == {first.runs[0].id, second.runs[0].id}
    assert (folder / "runs.csv").read_text().count("\n") == 3  # header and both runs
    results = load_sweep_results(tmp_path / "results", "s")
    assert list(results.runs["id"]) == [second.runs[0].id]


# --------------------------------------------------------------------------- health


def test_collapse_and_flat_loss_criteria():
    g = torch.Generator().manual_seed(0)
    prior = torch.nn.functional.normalize(torch.randn(500, 8, generator=g), dim=1)
    assert latent_collapse(prior[torch.randperm(500, generator=g)], prior) is None
    point = torch.nn.functional.normalize(torch.ones(500, 8) + 1e-3 * torch.randn(500, 8, generator=g), dim=1)
    assert latent_collapse(point, prior).startswith("latent collapse: the latents of 500 training items")
    assert latent_collapse(prior * 0.05, prior) is not None  # 0.25% of the variance
    assert latent_collapse(prior * 0.2, prior) is None  # 4%: shrunk, not collapsed
    assert flat_loss([4.62, 4.61, 4.615, 4.60]).startswith("flat loss: the training loss never fell 1%")
    assert flat_loss([4.62, 4.0, 3.5]) is None
    assert flat_loss([4.62, 4.62]) is None  # too short to say
    assert flat_loss([-2.0, -2.01, -2.015]) is not None and flat_loss([-2.0, -2.5, -2.6]) is None


def test_a_run_that_does_not_learn_is_done_with_a_warning(tmp_path, tiny_tree):
    from harness.collect import collect
    from harness.sweep.engine import write_manifest
    from harness.sweep import load_sweep
    from harness.sweep.identity import run_dir
    from harness.train import read_status, train_run

    tiny_tree["optim"]["lr"] = 1e-12  # the weights cannot move: the loss stays where it started
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": tiny_tree, "grid": {"seed": [0]}}))
    sweep = load_sweep(path)
    folder = tmp_path / "results" / "s"
    write_manifest(sweep, folder)
    (run,) = sweep.runs
    assert train_run(run.config, run_dir(folder, run.id)) == "done"
    (warning,) = read_status(run_dir(folder, run.id))["warnings"]
    assert warning.startswith("flat loss:")
    runs, _ = collect(folder)
    assert runs.loc[0, "warning"] == warning and runs.loc[0, "status"] == "done"


def test_collapsed_latents_are_reported(tiny_tree):
    from harness.trainer import Trainer

    trainer = Trainer(config_from_dict(tiny_tree))
    assert trainer.health_warnings() == []
    with torch.no_grad():
        for module in trainer.model.encoder.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()  # every input encodes to normalize(last bias): one point
    (warning,) = trainer.health_warnings()
    assert warning.startswith("latent collapse:")


# --------------------------------------------------------------------------- RNGs


def test_python_and_numpy_global_rngs_are_seeded_from_the_master_seed(tiny_tree):
    from harness.trainer import Trainer

    def draws(seed):
        random.seed(12345)
        np.random.seed(12345)
        Trainer(config_from_dict(dict(tiny_tree, seed=seed)))
        return random.random(), float(np.random.rand())

    first = draws(0)
    assert draws(0) == first
    assert draws(1)[0] != first[0] and draws(1)[1] != first[1]
    random.seed(12345)
    np.random.seed(12345)
    assert (random.random(), float(np.random.rand())) != first  # the trainer reseeded both
