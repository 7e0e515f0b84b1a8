"""Datasets, one module each, registered by name (``data.name``).

A loader is called as ``loader(data_cfg, seed)`` and returns a :class:`DataBundle` with the
train and test splits held as tensors in memory (images as uint8 N×C×H×W, vectors as float32
N×D), so the training loop indexes tensors and does no per-item Python work.
"""

from __future__ import annotations

from harness.datasets._base import (
    DATA_ROOT_ENV, DATASETS, DataBundle, DatasetKind, DatasetMissing, data_root, dataset_kind, load_dataset,
)

__all__ = ["DATASETS", "DATA_ROOT_ENV", "DataBundle", "DatasetKind", "DatasetMissing", "data_root", "dataset_kind",
           "load_dataset"]
