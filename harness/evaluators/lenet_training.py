"""Training and caching the domain feature network ``lenet`` (:mod:`harness.metrics.lenet`).

* **Training** (:func:`train_lenet`, the recipe :data:`RECIPE`): the whole training split of
  the dataset (``train_limit``/``test_limit`` of the run do not apply), pixels /255, Adam with
  a one-cycle learning rate (peak 3e-3), batch 128, 1,875 steps (4 MNIST epochs), on one
  thread (deterministic, and immune to a crowded machine), from the fixed seed
  :data:`RECIPE` ``seed`` in a forked RNG (the run's random streams are untouched).
  On MNIST: 99.2% test accuracy, ~20 s on 2 idle cores (bench/README.md).
* **Cache** (:func:`load_or_train`): content-addressed under
  :func:`harness.evaluators.feature_cache.cache_root` (``$MOCA_CACHE_DIR``, else
  ``~/.cache/moca-harness``; never the data root). The key binds the network to its
  determinants (recipe, extractor code version, dataset, image shape, classes, and the sha256
  of the training and test pixels and labels); the weights file is named by its own sha256.
  On reuse the key, the weights' sha256 and the recorded accuracy on the first
  :data:`CHECK_ITEMS` test items (measured again: 0.4 s on MNIST, one thread) are checked; anything that does not match is retrained with a one-line notice. Concurrent runs
  serialise on a lock file, so the network is trained once however many runs start together.

Deterministic: the same data, recipe, torch build and CPU give the same weights; the sha256
of the weights identifies the network in every result (two feature spaces are never confused).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from harness.evaluators import feature_cache as C
from harness.metrics.lenet import EXTRACTOR_VERSION, FEATURE_DIMS, INPUT_SIDE, NAME, LeNet

CHECK_ITEMS = 1000  # test items whose accuracy is measured again when a cached network is loaded
RECIPE = {"arch": "lenet-16-32-128-v1", "input_side": INPUT_SIDE, "steps": 1875, "batch_size": 128,
          "max_lr": 3e-3, "optimizer": "adam-onecycle", "seed": 0, "threads": 1}


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
    key: str  # the content key of the cache entry (feature_cache.content_key of its determinants)
    info: dict = field(default_factory=dict)  # the cache record: determinants, train time, versions

    name: str = NAME
    dims: int = FEATURE_DIMS


def determinants(dataset: str, train_x, train_y, test_x, test_y, recipe: dict) -> dict:
    """Everything the trained network depends on (its cache key is their sha256)."""
    return {"kind": "feature-network", "network": NAME, "extractor": EXTRACTOR_VERSION, "recipe": recipe,
            "dataset": dataset, "image_shape": list(train_x.shape[1:]), "num_classes": num_classes(train_y, test_y),
            "n_train": len(train_x), "n_test": len(test_x),
            "train_pixels_sha256": C.tensor_sha256(train_x), "train_labels_sha256": C.tensor_sha256(train_y),
            "test_pixels_sha256": C.tensor_sha256(test_x), "test_labels_sha256": C.tensor_sha256(test_y)}


def num_classes(train_y: torch.Tensor, test_y: torch.Tensor) -> int:
    return int(max(int(train_y.max()), int(test_y.max()))) + 1


def _read_cached(record: Path, key: str, found: dict, test_x, test_y) -> tuple[LeNetNetwork | None, str]:
    """The cached network, or (None, why it cannot be used)."""
    info, path, why = C.load_network(record, key, found)
    if info is None:
        return None, why
    try:
        net = LeNet(found["image_shape"][0], found["num_classes"])
        net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except Exception as err:  # noqa: BLE001 - any unreadable file is retrained
        return None, f"{path} cannot be loaded ({type(err).__name__})"
    check = accuracy(net, test_x[:CHECK_ITEMS], test_y[:CHECK_ITEMS])
    if check != info.get("check_accuracy") or not isinstance(info.get("test_accuracy"), float):
        return None, (f"{path} scores {100 * check:.2f}% on the first {CHECK_ITEMS} test items, its record says "
                      f"{info.get('check_accuracy')} (swapped)")
    return LeNetNetwork(net.eval(), path, info["weights_sha256"], float(info["test_accuracy"]), key, info), ""


def load_or_train(dataset: str, train_x: torch.Tensor, train_y: torch.Tensor, test_x: torch.Tensor,
                  test_y: torch.Tensor, recipe: dict | None = None, notice: Callable[[str], None] | None = None,
                  root: str | Path | None = None) -> LeNetNetwork:
    """The domain network of ``dataset`` (full splits, uint8 images, int labels): from the cache
    (``root``, default :func:`feature_cache.cache_root`) if an entry there passes every check,
    else trained, tested and cached (see module doc). ``notice`` receives the one-line message
    when it is (re)trained (default: stderr)."""
    notice = notice or (lambda line: print(line, file=sys.stderr, flush=True))
    recipe = recipe or RECIPE
    found = determinants(dataset, train_x, train_y, test_x, test_y, recipe)
    key = C.content_key(found)
    root = Path(root) if root is not None else C.cache_root()
    record = C.record_path(root, NAME, dataset, key)
    cached, why = _read_cached(record, key, found, test_x, test_y)
    if cached is not None:
        return cached
    try:
        with C.locked(record):
            cached, why_now = _read_cached(record, key, found, test_x, test_y)  # another run may have trained it
            if cached is not None:
                return cached
            return _train_and_store(record, key, found, train_x, train_y, test_x, test_y, recipe, notice,
                                    why if why_now == why else why_now)
    except OSError as err:
        raise OSError(f"{NAME} feature network: the cache folder {record.parent} cannot be written "
                      f"({err.strerror or type(err).__name__}); set MOCA_CACHE_DIR to a writable folder") from None


def _train_and_store(record, key, found, train_x, train_y, test_x, test_y, recipe, notice, why) -> LeNetNetwork:
    notice(f"{NAME} feature network: {why}; training it on {len(train_x):,} {found['dataset']} images "
           f"({recipe['steps']} steps on one thread; see bench/README.md for its cost)")
    start, cpu = time.perf_counter(), time.process_time()
    net = train_lenet(train_x, train_y, found["num_classes"], recipe)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    acc = accuracy(net, test_x, test_y)
    check = accuracy(net, test_x[:CHECK_ITEMS], test_y[:CHECK_ITEMS])
    info = {"name": NAME, "test_accuracy": acc, "check_accuracy": check, "train_time_s": round(seconds, 2),
            "train_cpu_s": round(cpu, 2), "torch": torch.__version__}
    path, digest = C.save_network(record, key, found, net.state_dict(), info)
    return LeNetNetwork(net, path, digest, acc, key, {**info, "key": key, "determinants": found})
