"""The in-memory dataset container, the dataset registry, and the validation split.

Every dataset gets the same validation split, in one place (:func:`load_dataset`):
``data.val_size`` items of the loaded training split (after ``data.train_limit``), chosen by a
permutation seeded with ``data.val_seed`` alone (not the run's master seed, so every run of a
search, whatever its seed, holds out the same items), are moved into ``val_x`` / ``val_y`` and
never trained on. The remaining training items keep their order. Model selection (the search
stage of a sweep, docs/sweeps.md "Search") evaluates on this split with ``eval.split: val``;
the test split is only used by the final runs at the selected settings.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from harness.errors import ConfigError
from harness.registry import Registry
from harness.seeding import make_generator

DATASETS: Registry = Registry("dataset", package="harness.datasets")
DATA_ROOT_ENV = "MOCA_DATA_ROOT"
DEFAULT_DATA_ROOT = "data"


def data_root(data_cfg) -> Path:
    """Where datasets are looked for (and downloaded to): ``data.root`` when set, else the
    environment variable ``MOCA_DATA_ROOT``, else ``./data``. One setting points every run
    of an offline machine at a local copy (e.g. ``export MOCA_DATA_ROOT=../shared/data``)."""
    root = data_cfg.root or os.environ.get(DATA_ROOT_ENV) or DEFAULT_DATA_ROOT
    return Path(root).expanduser()


def offline_hint(what: str, lead: bool = True) -> str:
    """The second half of every missing-data message: how an offline machine gets the data."""
    text = f"point {DATA_ROOT_ENV} (or data.root) at {what}"
    return ("offline, " + text) if lead else text


class DatasetMissing(RuntimeError):
    """A dataset is not on disk (and cannot be downloaded); the message is one line saying
    where it was looked for and how to get it."""


@dataclass
class DataBundle:
    """Train/validation/test splits as tensors. Images are uint8 in [0, 255]; vectors are float32.

    ``val_x`` is None unless ``data.val_size`` > 0 (see the module docstring)."""

    name: str
    train_x: torch.Tensor
    test_x: torch.Tensor
    train_y: torch.Tensor | None = None
    test_y: torch.Tensor | None = None
    val_x: torch.Tensor | None = None
    val_y: torch.Tensor | None = None

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.train_x.dim() == 4

    @property
    def num_pixels(self) -> int:
        return int(torch.tensor(self.item_shape).prod())

    @staticmethod
    def to_float(batch: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 in [0, 1]; float tensors pass through."""
        if batch.dtype == torch.uint8:
            return batch.float().div_(255.0)
        return batch.float()


    def evaluation_view(self, split: str) -> "DataBundle":
        """The bundle the evaluators see for ``eval.split``: itself for ``test``; for ``val``,
        a view whose ``test_x`` / ``test_y`` are the validation items, so that every evaluator
        (they all read ``test_x``) measures on the validation split without knowing of it."""
        if split == "test":
            return self
        if split != "val":
            raise ValueError(f"eval.split: got {split!r}; allowed: test, val")
        if self.val_x is None:
            raise ValueError("eval.split: 'val' needs a validation split; allowed: data.val_size >= 1")
        return dataclasses.replace(self, test_x=self.val_x, test_y=self.val_y)


def hold_out_validation(bundle: DataBundle, size: int, seed: int) -> DataBundle:
    """Move ``size`` training items, chosen by a permutation seeded with ``seed``, into the
    validation split; the other training items keep their order. ``size`` 0 is a no-op."""
    if not size:
        return bundle
    n = len(bundle.train_x)
    if size >= n:
        raise ConfigError("data.val_size", f"got {size}; allowed: fewer than the {n} training items")
    perm = torch.randperm(n, generator=make_generator(seed, "validation_split", n))
    val_idx = perm[:size].sort().values
    keep = torch.ones(n, dtype=torch.bool)
    keep[val_idx] = False

    def pick(t: torch.Tensor | None, idx) -> torch.Tensor | None:
        return None if t is None else t[idx].contiguous()

    return dataclasses.replace(
        bundle, train_x=pick(bundle.train_x, keep), train_y=pick(bundle.train_y, keep),
        val_x=pick(bundle.train_x, val_idx), val_y=pick(bundle.train_y, val_idx))


@dataclass(frozen=True)
class DatasetKind:
    """What a dataset holds, known before it is loaded (config validation checks the
    architecture and the metrics against it): images or vectors, whether items carry one class
    label each (kNN accuracy, the ``lenet`` feature network), and ``shape(data_cfg)``, the
    shape of one item under these settings (None: not known before loading). A loader declares
    it when it registers: ``@DATASETS.register(name, kind=DatasetKind(...))``."""

    image: bool
    class_labels: bool
    shape: Callable[[Any], tuple[int, ...]] | None = None
    # training items under these settings before data.train_limit (None: known only once loaded)
    train_items: Callable[[Any], int] | None = None


def square_images(channels: int, native_side: int) -> Callable[[Any], tuple[int, int, int]]:
    """``DatasetKind.shape`` of an image dataset: (C, S, S) with S = ``data.image_size``, or
    the dataset's native side when that is null."""
    def shape(data_cfg) -> tuple[int, int, int]:
        side = data_cfg.image_size or native_side
        return (channels, side, side)

    return shape


def known_train_items(data_cfg) -> int | None:
    """How many items a run trains on, when known before loading: the dataset's declared
    count (``DatasetKind.train_items``) or ``data.train_limit``, whichever is smaller, less
    the validation split (``data.val_size``); None when neither is known."""
    kind = dataset_kind(data_cfg.name)
    counts = [n for n in (kind.train_items(data_cfg) if kind.train_items else None, data_cfg.train_limit)
              if n is not None]
    return min(counts) - data_cfg.val_size if counts else None


def dataset_kind(name: str) -> DatasetKind:
    """The :class:`DatasetKind` that the loader registered as ``name`` declares."""
    return DATASETS.get(name).kind


def dataset_item_shape(data_cfg) -> tuple[int, ...] | None:
    """The shape of one item of ``data_cfg``'s dataset, known without loading it, or None."""
    shape = dataset_kind(data_cfg.name).shape
    return tuple(shape(data_cfg)) if shape is not None else None


def prepare_dataset(data_cfg) -> None:
    """Make sure the files of ``data_cfg``'s dataset are on disk and intact (downloading them
    when ``data.download``), without loading them: the ``prepare`` hook a loader registers
    (``@DATASETS.register(name, prepare=...)``), called once per dataset in the process that
    submits a sweep (:mod:`harness.sweep.preflight`). Datasets without files to check (the
    synthetic task, scikit-learn's digits) or without a hook are left to their loader. Raises
    the loader's one-line :class:`DatasetMissing`."""
    prepare = getattr(DATASETS.get(data_cfg.name), "prepare", None)
    if prepare is not None:
        prepare(data_cfg)


def load_dataset(data_cfg, seed: int = 0) -> DataBundle:
    bundle = DATASETS.get(data_cfg.name)(data_cfg, seed)
    return hold_out_validation(bundle, getattr(data_cfg, "val_size", 0) or 0, getattr(data_cfg, "val_seed", 0))
