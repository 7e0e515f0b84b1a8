"""Every paper-scale sweep file trains end to end for a few steps (slow).

Paper-scale sweeps are the files of ``sweeps/paper/`` and any other shipped sweep file that
asks SLURM for GPUs (``slurm.gpus_per_node >= 1``). For each file,
one run of every distinct (method, architecture, dataset, image size, latent size) in it
trains through :func:`harness.train.train_run` on generated uint8 images of the dataset's
shape at the run's resolution (CIFAR-10 3×32×32, CelebA 3×64×64, CelebA-HQ at its
``data.image_size``, MNIST 1×28×28), with the sweep's own model, method (queue sizes
included), optimiser and evaluation metrics. Shrunk for a CPU: one epoch of 2 steps with a
batch of at most 8, evaluation after it with at most 8 samples, FID on random weights of
the FID Inception network. The run must end ``done`` with finite metrics.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

import harness.trainer as trainer_module
from harness.atomic import read_jsonl
from harness.config import config_from_dict
from harness.datasets import DataBundle
from harness.datasets._base import hold_out_validation
from harness.metrics import fid as M
from harness.sweep.spec import load_sweep
from harness.train import read_status, train_run

ROOT = Path(__file__).resolve().parents[1]
NATIVE = {"cifar10": (3, 32), "celeba": (3, 64), "celeba_hq": (3, 256), "mnist": (1, 28)}
BATCH = 8


def paper_sweeps() -> list[Path]:
    """Every file of sweeps/paper/, and any other sweep file that asks SLURM for GPUs."""
    files = sorted((ROOT / "sweeps").rglob("*.yaml"))
    return [f for f in files if f.parent.name == "paper" or load_sweep(f).slurm.gpus_per_node >= 1]


def generated(data_cfg, seed: int = 0) -> DataBundle:
    """Random uint8 images of the dataset's shape at the configured resolution, with labels."""
    channels, native = NATIVE[data_cfg.name]
    size = data_cfg.image_size or native
    val = data_cfg.val_size or 0
    n_train = 2 * BATCH + val
    g = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n_train + 16, channels, size, size), generator=g, dtype=torch.uint8)
    labels = torch.randint(0, 10, (len(images),), generator=g)
    bundle = DataBundle(data_cfg.name, images[:n_train], images[n_train:], labels[:n_train], labels[n_train:])
    return hold_out_validation(bundle, val, data_cfg.val_seed)  # as load_dataset does


def shrunk(tree: dict, tmp_path: Path) -> dict:
    t, e = tree["train"], tree["eval"]
    t.update(epochs=1, batch_size=min(t["batch_size"], BATCH), device="cpu", progress="off", num_threads=1)
    tree["optim"].update(lr_decay_every=None, lr_decay_until=None)
    e.update(every=0, num_samples=min(e["num_samples"], 8), projections=min(e["projections"], 16))
    e["fid"].update(num_samples=8, kid_subsets=2, kid_subset_size=4, batch_size=8, weights=None,
                    cache_dir=str(tmp_path / "fid_cache"))
    e["swd"].update(num_images=min(e["swd"]["num_images"], 8))
    e["artifacts"].update(tsne_points=10)
    if "val_size" in tree["data"] and tree["data"]["val_size"]:
        tree["data"]["val_size"] = 4
    return tree


def representative_runs(sweep) -> list:
    seen, runs = set(), []
    for run in sweep.runs:
        c = run.config
        key = (c.method.name, c.model.arch, c.data.name, c.data.image_size, c.model.latent_dim)
        if key not in seen:
            seen.add(key)
            runs.append(run)
    return runs


@pytest.fixture(scope="module")
def torch_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("torch_home")
    M.save_random_fid_weights(home / "hub" / "checkpoints" / M.FID_WEIGHTS_FILE, seed=0)
    return home


def test_paper_sweeps_are_found():
    found = paper_sweeps()
    assert set((ROOT / "sweeps" / "paper").glob("*.yaml")) <= set(found)
    assert len(found) >= 10
    assert {run.config.data.name for f in found for run in load_sweep(f).runs} <= set(NATIVE)


@pytest.mark.slow
@pytest.mark.parametrize("path", paper_sweeps(), ids=lambda p: str(p.relative_to(ROOT / "sweeps")))
def test_paper_sweep_trains_a_few_steps(path, tmp_path, monkeypatch, torch_home):
    monkeypatch.setenv("TORCH_HOME", str(torch_home))
    monkeypatch.setattr(trainer_module, "load_dataset", generated)
    sweep = load_sweep(path)
    for run in representative_runs(sweep):
        cfg = config_from_dict(shrunk(run.config.to_dict(), tmp_path))
        run_dir = tmp_path / run.id
        state = train_run(cfg, run_dir, quiet_errors=True)
        status = read_status(run_dir)
        error = (run_dir / "error.txt").read_text()[-2000:] if (run_dir / "error.txt").exists() else ""
        assert state == "done", f"{path.name} {run.name}: {status.get('reason')}\n{error}"
        assert status["step"] == 2
        last = read_jsonl(run_dir / "metrics.jsonl")[-1]
        numbers = {k: v for k, v in last.items() if isinstance(v, float)}
        assert all(math.isfinite(v) for v in numbers.values()), (run.name, numbers)
        for metric in cfg.eval.metrics:
            if metric == "fid":
                assert "fid" in last and "kid" in last
