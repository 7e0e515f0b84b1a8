"""Shared fixtures: tiny configs that train in well under a second on a CPU.

Real data: when ``MOCA_DATA_ROOT`` is not set and ``../shared/data`` (the offline copy next to
the repository, read-only) exists, the tests use it through that variable, as any offline
machine would (harness.datasets.data_root); nothing is copied, and nothing is written there
(feature networks are cached under ``.cache/tests`` through ``MOCA_CACHE_DIR``).
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "MOCA_DATA_ROOT" not in os.environ and SHARED_DATA.is_dir():
    os.environ["MOCA_DATA_ROOT"] = str(SHARED_DATA)
# Feature networks the tests train (harness/evaluators/lenet_training.py) go to a git-ignored folder of the
# checkout, never into the shared data copy or the user's cache; kept between local runs.
os.environ.setdefault("MOCA_CACHE_DIR", str(Path(__file__).resolve().parents[1] / ".cache" / "tests"))

TINY = {
    "data": {"name": "synthetic", "num_points": 160, "input_dim": 10},
    "model": {"arch": "mlp", "hidden": [32], "latent_dim": 8, "prior": "sphere"},
    "method": {"name": "moca", "weight": 1.0, "tau": 0.2, "momentum": 0.9, "queue_size": 50},
    "optim": {"lr": 1e-3},
    "train": {"epochs": 4, "batch_size": 32, "device": "cpu", "progress": "off"},
    "seed": 0,
}


@pytest.fixture
def tiny_tree():
    """A run config tree (plain dict) for a tiny synthetic MoCA run with reconstruction."""
    return copy.deepcopy(TINY)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny tensors run fastest on one thread, and parallel test processes do not fight."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
