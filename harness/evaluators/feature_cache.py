"""Content-addressed caches: feature networks and FID reference statistics, verified on load.

Nothing the harness reads back from a cache is trusted because of its file name. Every entry
is stored under a **key**, the sha256 of its *determinants* (canonical JSON of everything that
determines the entry: dataset, split, sample count, image shape, sha256 of the images and
labels it was computed from (after preprocessing: resizing and quantisation are in the
pixels), the feature network's weights sha256 and the code version of the feature extractor).
The entry holds its key and its determinants; on load the key is recomputed from the data of
the run and compared, and the content is checked against itself:

* **reference statistics** (``<stats folder>/<dataset>-<split>-n<N>-<key[:16]>.npz``): the
  stored key must equal the recomputed one, ``mu`` and ``sigma`` must be the mean and
  covariance of the stored features, and the features of :data:`SPOT_CHECKS` reference images,
  extracted again, must equal the stored ones. A poisoned or foreign file is recomputed and
  replaced, with a one-line notice; it is never used.
* **feature networks** (:func:`save_network` / :func:`load_network`):
  ``<cache>/feature_nets/<name>-<dataset>-<key[:16]>.json`` (the record: key, determinants,
  weights sha256, test accuracy) and the weights ``<name>-<dataset>-<key[:16]>-w<sha256[:16]>.pt``,
  named by their own content. The weights' sha256 must match both the record and the file name
  (a network swapped together with a consistent checksum record is caught by the name), and
  the caller re-measures what the record claims (the test accuracy). A mismatch is retrained.

``<cache>`` is :func:`cache_root`: ``$MOCA_CACHE_DIR`` when set, else
``$XDG_CACHE_HOME/moca-harness`` (``~/.cache/moca-harness``); never a data root, which may be a
shared copy that others read. Every cache file is confined to its folder (:func:`confined`).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import zipfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from harness.cache_dir import cache_root  # noqa: F401  (re-exported: the one cache folder)

from harness.atomic import atomic_write, write_json
from harness.metrics.fid import FeatureStats, sha256_file
from harness.paths import PathEscape, inside

NETS_SUBDIR = "feature_nets"
SPOT_CHECKS = 8  # reference images whose features are extracted again when statistics are read


def content_key(determinants: dict) -> str:
    """sha256 of the canonical JSON of ``determinants`` (sorted keys, no spaces)."""
    return hashlib.sha256(json.dumps(determinants, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def tensor_sha256(x: torch.Tensor) -> str:
    """sha256 of a tensor's bytes (C order), e.g. a split's uint8 pixels or int64 labels."""
    return hashlib.sha256(np.ascontiguousarray(x.cpu().numpy())).hexdigest()


def confined(folder: str | Path, name: str) -> Path:
    """``folder/name``, refusing (:class:`PathEscape`, one line) a name that leaves the folder
    (separators, ``..``, or a symlink that points elsewhere)."""
    folder = Path(folder)
    if not name or "/" in name or "\\" in name or name in (".", ".."):
        raise PathEscape(f"cache file name {name!r} is not a plain file name")
    try:
        inside(folder, folder / name)
    except PathEscape:
        raise PathEscape(f"cache file {folder / name} resolves outside {folder} (a symlink?); remove it") from None
    return folder / name


@contextmanager
def locked(path: Path):
    """An exclusive lock on ``<path>.lock`` (concurrent runs compute one entry once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


# ---------------------------------------------------------------------------- reference statistics


def stats_path(folder: str | Path, dataset: str, split: str, n: int, key: str) -> Path:
    return confined(folder, f"{dataset}-{split}-n{n}-{key[:16]}.npz")


def spot_indices(n: int, count: int = SPOT_CHECKS) -> list[int]:
    """Evenly spread indices of the images whose features are checked again on load."""
    return sorted({round(i * (n - 1) / max(count - 1, 1)) for i in range(min(count, n))})


def _stats_problem(path: Path, key: str, images: torch.Tensor, dims: int,
                   extract: Callable[[torch.Tensor], np.ndarray]) -> tuple[FeatureStats | None, str]:
    """The statistics in ``path`` if they pass every check, else (None, what is wrong)."""
    try:
        with np.load(path, allow_pickle=False) as f:
            stored_key = str(f["key"])
            stats = FeatureStats(f["mu"], f["sigma"], f["features"].astype(np.float64))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError):
        return None, "unreadable"
    n = len(images)
    if stored_key != key:
        return None, f"its key {stored_key[:12]}… is not {key[:12]}… (another entry's file)"
    if stats.mu.shape != (dims,) or stats.sigma.shape != (dims, dims) or stats.features.shape != (n, dims):
        return None, "its arrays have the wrong shapes"
    recomputed = FeatureStats.from_features(stats.features)
    scale = max(float(np.abs(stats.features).max()), 1e-12)
    if not (np.allclose(stats.mu, recomputed.mu, rtol=1e-4, atol=1e-5 * scale)
            and np.allclose(stats.sigma, recomputed.sigma, rtol=1e-3, atol=1e-5 * scale * scale)):
        return None, "its mean or covariance is not that of its features"
    idx = spot_indices(n)
    fresh = extract(images[idx])
    if not np.allclose(stats.features[idx], fresh, rtol=1e-3, atol=1e-4 * scale):
        return None, f"its features of {len(idx)} reference images differ from the network's"
    return stats, ""


def reference_statistics(folder: str | Path, determinants: dict, images: torch.Tensor, dims: int,
                         extract: Callable[[torch.Tensor], np.ndarray],
                         notice: Callable[[str], None]) -> tuple[FeatureStats, dict]:
    """The reference statistics of ``images`` (uint8 N×C×H×W) in the feature space of
    ``extract``, read from the content-addressed cache when an entry passes every check, else
    computed and stored. ``determinants`` (see :func:`stats_determinants`) give the key.
    Returns ``(stats, entry)``, ``entry`` = {key, path, read_from_cache} for the provenance."""
    key = content_key(determinants)
    path = stats_path(folder, determinants["dataset"], determinants["split"], len(images), key)
    if path.is_file():
        stats, why = _stats_problem(path, key, images, dims, extract)
        if stats is not None:
            return stats, {"key": key, "path": str(path), "read_from_cache": True}
        notice(f"reference statistics {path}: {why}; recomputing them (the file is not used)")
    stats = FeatureStats.from_features(extract(images))
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: np.savez(
        f, key=np.array(key), determinants=np.array(json.dumps(determinants, sort_keys=True)),
        mu=stats.mu, sigma=stats.sigma, features=stats.features.astype(np.float32)), mode="wb")
    return stats, {"key": key, "path": str(path), "read_from_cache": False}


def stats_determinants(dataset: str, split: str, images: torch.Tensor, network) -> dict:
    """What reference statistics depend on: the images (dataset, split, N, shape, pixels) and
    the feature space (network name, dims, weights sha256, extractor code version)."""
    return {"kind": "reference-statistics", "dataset": dataset, "split": split, "n": len(images),
            "image_shape": list(images.shape[1:]), "pixels_sha256": tensor_sha256(images),
            "network": network.name, "dims": network.dims, "weights_sha256": network.weights_sha256,
            "extractor": network.extractor}


# ---------------------------------------------------------------------------- feature networks


def record_path(root: Path, name: str, dataset: str, key: str) -> Path:
    return confined(root / NETS_SUBDIR, f"{name}-{dataset}-{key[:16]}.json")


def weights_path(record: Path, weights_sha256: str) -> Path:
    return confined(record.parent, f"{record.stem}-w{weights_sha256[:16]}.pt")


def load_network(record: Path, key: str, determinants: dict) -> tuple[dict | None, Path | None, str]:
    """(record, weights file, "") of a cached network whose key and weights check out, else
    (None, None, what is wrong). The caller loads the weights (``torch.load(weights_only=True)``)
    and re-measures what the record claims."""
    if not record.is_file():
        return None, None, f"{record} is missing"
    try:
        info = json.loads(record.read_text())
        digest = info["weights_sha256"]
        ok = isinstance(info, dict) and isinstance(digest, str) and len(digest) == 64
    except (OSError, ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        return None, None, f"{record} is unreadable"
    if info.get("key") != key or info.get("determinants") != determinants:
        return None, None, f"{record} was made from other data or another recipe (key mismatch)"
    try:
        path = weights_path(record, digest)
    except PathEscape as e:
        return None, None, str(e)
    if info.get("weights_file") != path.name:
        return None, None, (f"{record} names the weights {info.get('weights_file')!r}, but its sha256 "
                            f"{digest[:12]}… names {path.name!r} (corrupt or swapped)")
    if not path.is_file():
        return None, None, f"{path} is missing"
    actual = sha256_file(path)
    if actual != digest:
        return None, None, (f"{path} has sha256 {actual[:12]}…, but its name and {record.name} say "
                            f"{digest[:12]}… (corrupt or swapped)")
    return info, path, ""


def save_network(record: Path, key: str, determinants: dict, state: dict, info: dict) -> tuple[Path, str]:
    """Store ``state`` (a state dict) under its content name and the record beside it;
    returns (weights file, its sha256)."""
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = confined(record.parent, f"{record.stem}.new.pt")
    atomic_write(tmp, lambda f: torch.save(state, f), mode="wb")
    digest = sha256_file(tmp)
    path = weights_path(record, digest)
    os.replace(tmp, path)
    write_json(record, {**info, "key": key, "determinants": determinants, "weights_sha256": digest,
                        "weights_file": path.name})
    return path, digest
