"""The domain feature network ``lenet``: a LeNet-style classifier trained by the harness.

At CPU scale (MNIST, minutes on two cores) pytorch-fid's Inception network is both slow
(about 12 minutes for 2,000 images here) and blind to the domain (28×28 digits upsampled to
299×299 ImageNet inputs). The Fréchet distance, KID, precision/recall/density/coverage can
instead be computed in the penultimate-layer features of a small classifier of the dataset
itself, as the "domain FID" of the MNIST literature (e.g. the LeNet features of Bińkowski et
al. 2018, Sec. 5). This module owns that network:

* **Architecture** (:class:`LeNet`): images are resized to 28×28 (bilinear, antialiased; a
  no-op for MNIST) and go through conv 5×5 (16) → ReLU → max-pool 2 → conv 5×5 (32) → ReLU →
  max-pool 2 → linear 512→128 → ReLU (the **features**, 128-d) → linear 128→classes.
* **Training** (:func:`train_lenet`, the recipe :data:`RECIPE`): the whole training split of
  the dataset (``train_limit``/``test_limit`` of the run do not apply), pixels /255, Adam with
  a one-cycle learning rate (peak 3e-3), batch 128, 1,875 steps (4 MNIST epochs), on one
  thread (deterministic, and immune to a crowded machine), from the fixed seed :data:`RECIPE` ``seed`` in a forked RNG (the run's random
  streams are untouched).
  On MNIST: 99.2% test accuracy, ~20 s on 2 idle cores (bench/README.md).
* **Cache** (:func:`load_or_train`): ``<cache>/feature_nets/lenet-<dataset>-<C>x<H>x<W>-
  r<recipe hash>-x<training pixels hash>.pt`` with a JSON sidecar holding the sha256 of the
  weights file and the test accuracy. Every run reuses it; on reuse the file's sha256 is
  checked against the sidecar, and a missing, unreadable or mismatching file is retrained
  with a one-line notice on stderr. Concurrent runs serialise on a lock file, so the network
  is trained once however many runs of a sweep start together. Files are written atomically
  (:mod:`harness.atomic`) and read with ``torch.load(weights_only=True)``.
  ``<cache>`` is, in this order (:func:`cache_dirs`): ``$MOCA_CACHE_DIR`` when set, the data
  root, and ``$XDG_CACHE_HOME/moca-harness`` (``~/.cache/moca-harness``). An intact network is
  read from the first of them that holds one; a new one is written to the first that can be
  written, so a shared read-only data root (``MOCA_DATA_ROOT`` on a cluster) works as it is,
  with or without a network cached in it.

Deterministic: the same data, recipe, torch build and CPU give the same weights; the sha256
is recorded in every result that uses the network, so two feature spaces are never confused.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.atomic import atomic_write, write_json
from harness.metrics.fid import sha256_file

NAME = "lenet"
FEATURE_DIMS = 128
INPUT_SIDE = 28
RECIPE = {"arch": "lenet-16-32-128-v1", "input_side": INPUT_SIDE, "steps": 1875, "batch_size": 128,
          "max_lr": 3e-3, "optimizer": "adam-onecycle", "seed": 0, "threads": 1}
CACHE_SUBDIR = "feature_nets"


class LeNet(nn.Module):
    """LeNet-style classifier; :meth:`features` is its 128-d penultimate layer."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 5)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.fc1 = nn.Linear(32 * 4 * 4, FEATURE_DIMS)
        self.fc2 = nn.Linear(FEATURE_DIMS, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1], N×C×H×W → N×128 (post-ReLU) features."""
        if x.shape[-2:] != (INPUT_SIDE, INPUT_SIDE):
            x = F.interpolate(x, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False,
                              antialias=min(x.shape[-2:]) > INPUT_SIDE)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


def pixel_hash(x: torch.Tensor) -> str:
    return hashlib.sha256(np.ascontiguousarray(x.cpu().numpy())).hexdigest()


def recipe_hash(recipe: dict) -> str:
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _float(x: torch.Tensor) -> torch.Tensor:
    return x.float().div(255.0) if x.dtype == torch.uint8 else x.float()


def accuracy(net: LeNet, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> float:
    net.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            correct += int((net(_float(x[i : i + batch_size])).argmax(1) == y[i : i + batch_size]).sum())
    return correct / len(x)


def train_lenet(train_x: torch.Tensor, train_y: torch.Tensor, num_classes: int,
                recipe: dict | None = None) -> LeNet:
    """Train :class:`LeNet` on uint8 images ``train_x`` with labels ``train_y`` (see module doc).

    Batches are drawn without replacement from fresh permutations (an epoch-wise shuffle that
    continues across epoch boundaries), all from ``recipe['seed']``; the global RNG state is
    restored afterwards. Training runs on ``recipe['threads']`` threads whatever the run's
    setting, since CPU kernels sum in a thread-dependent order.
    """
    recipe = recipe or RECIPE
    steps, bs = recipe["steps"], min(recipe["batch_size"], len(train_x))
    threads = torch.get_num_threads()
    torch.set_num_threads(recipe["threads"])  # CPU results depend on the thread count
    try:
        return _train_steps(train_x, train_y, num_classes, recipe, steps, bs)
    finally:
        torch.set_num_threads(threads)


def _train_steps(train_x, train_y, num_classes, recipe, steps, bs) -> LeNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(recipe["seed"])
        net = LeNet(train_x.shape[1], num_classes)
        g = torch.Generator().manual_seed(recipe["seed"])
        opt = torch.optim.Adam(net.parameters(), lr=recipe["max_lr"])
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=recipe["max_lr"], total_steps=steps)
        net.train()
        perm, pos = torch.randperm(len(train_x), generator=g), 0
        for _ in range(steps):
            if pos + bs > len(perm):
                perm, pos = torch.randperm(len(train_x), generator=g), 0
            idx = perm[pos : pos + bs]
            pos += bs
            loss = F.cross_entropy(net(_float(train_x[idx])), train_y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
    return net.eval()


@dataclass
class LeNetNetwork:
    """A trained, cached domain network and what identifies it (for provenance)."""

    net: LeNet
    weights_path: Path
    weights_sha256: str
    test_accuracy: float
    info: dict  # the sidecar: dataset, shapes, recipe, pixel hash, train time, versions

    name: str = NAME
    dims: int = FEATURE_DIMS


def cache_path(root: str | Path, dataset: str, train_x: torch.Tensor, recipe: dict | None = None) -> Path:
    """Where the network of ``dataset`` is cached under the cache root ``root``."""
    recipe = recipe or RECIPE
    c, h, w = train_x.shape[1:]
    name = f"{NAME}-{dataset}-{c}x{h}x{w}-r{recipe_hash(recipe)[:12]}-x{pixel_hash(train_x)[:12]}.pt"
    return Path(root) / CACHE_SUBDIR / name


def cache_dirs(data_root: str | Path) -> list[Path]:
    """The cache roots, in the order they are tried (see the module docstring)."""
    user = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moca-harness"
    env = os.environ.get("MOCA_CACHE_DIR")
    return [*([Path(env)] if env else []), Path(data_root), user]


def _writable(root: Path) -> bool:
    """Can a file be created in ``root``/feature_nets (tried, not guessed: a read-only mount or a
    full disk says no even to root)?"""
    folder = root / CACHE_SUBDIR
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def sidecar_path(path: Path) -> Path:
    return path.with_suffix(".json")


@contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _read_cached(path: Path, in_channels: int, num_classes: int) -> tuple[LeNetNetwork | None, str]:
    """The cached network, or (None, why it cannot be used)."""
    side = sidecar_path(path)
    if not path.is_file():
        return None, f"{path} is missing"
    try:
        info = json.loads(side.read_text())
        expected = info["weights_sha256"]
    except (OSError, ValueError, KeyError, TypeError):
        return None, f"{side} is missing or unreadable"
    digest = sha256_file(path)
    if digest != expected:
        return None, f"{path} has sha256 {digest[:12]}…, expected {str(expected)[:12]}… (corrupt)"
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = LeNet(in_channels, num_classes)
        net.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - any unreadable file is retrained
        return None, f"{path} cannot be loaded ({type(err).__name__})"
    return LeNetNetwork(net.eval(), path, digest, float(info["test_accuracy"]), info), ""


def load_or_train(root: str | Path, dataset: str, train_x: torch.Tensor, train_y: torch.Tensor,
                  test_x: torch.Tensor, test_y: torch.Tensor, recipe: dict | None = None,
                  notice: Callable[[str], None] | None = None) -> LeNetNetwork:
    """The domain network of ``dataset`` (full splits, uint8 images, int labels): from the cache
    under ``root`` if it is there and intact, else trained, tested and cached (see module doc).
    ``notice`` receives the one-line message when it is (re)trained (default: stderr)."""
    notice = notice or (lambda line: print(line, file=sys.stderr, flush=True))
    recipe = recipe or RECIPE
    num_classes = int(max(int(train_y.max()), int(test_y.max()))) + 1
    roots = cache_dirs(root)
    why = ""
    for r in roots:  # an intact network anywhere, read-only roots included (no lock needed to read)
        cached, reason = _read_cached(cache_path(r, dataset, train_x, recipe), train_x.shape[1], num_classes)
        if cached is not None:
            return cached
        why = why or (reason if r == Path(root) else "")
    writable = next((r for r in roots if _writable(r)), None)
    if writable is None:
        raise OSError(f"{NAME} feature network: no cache folder can be written (tried "
                      + ", ".join(str(r / CACHE_SUBDIR) for r in roots) + "); set MOCA_CACHE_DIR to a writable folder")
    path = cache_path(writable, dataset, train_x, recipe)
    with _locked(path):
        cached, reason = _read_cached(path, train_x.shape[1], num_classes)  # another run may have trained it
        if cached is not None:
            return cached
        why = why or reason
        notice(f"{NAME} feature network: {why}; training it on {len(train_x):,} {dataset} images "
               f"({recipe['steps']} steps on one thread; see bench/README.md for its cost)")
        start, cpu = time.perf_counter(), time.process_time()
        net = train_lenet(train_x, train_y, num_classes, recipe)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        acc = accuracy(net, test_x, test_y)
        state = net.state_dict()
        atomic_write(path, lambda f: torch.save(state, f), mode="wb")
        digest = sha256_file(path)
        info = {"name": NAME, "dataset": dataset, "image_shape": list(train_x.shape[1:]),
                "num_classes": num_classes, "n_train": len(train_x), "n_test": len(test_x),
                "train_pixels_sha256": pixel_hash(train_x), "recipe": recipe,
                "weights_sha256": digest, "test_accuracy": acc, "train_time_s": round(seconds, 2), "train_cpu_s": round(cpu, 2),
                "torch": torch.__version__}
        write_json(sidecar_path(path), info)
    return LeNetNetwork(net, path, digest, acc, info)


def lenet_features(images: torch.Tensor, network: LeNetNetwork, batch_size: int = 1000,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Penultimate-layer features (N × 128, float64) of uint8 N×C×H×W images."""
    if images.dtype != torch.uint8:
        raise TypeError(f"lenet_features takes uint8 images (see fid.quantize), got {images.dtype}")
    net = network.net.to(device).eval()
    out = np.empty((len(images), FEATURE_DIMS))
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size].to(device).float().div(255.0)
            out[i : i + len(batch)] = net.features(batch).double().cpu().numpy()
    return out
