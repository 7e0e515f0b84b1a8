"""Datasets, one module each, registered by name (``data.name``).

A dataset is one file: a loader registered with ``@DATASETS.register(name, kind=DatasetKind(...))``
(what it holds, known before loading: images or vectors, class labels, one item's shape), and,
if it has settings of its own, ``Config=`` a dataclass whose fields become keys of ``data:``
(the synthetic task's ``num_points``; :mod:`harness.plugin_settings`) and ``check_run=`` a
function of the run config for requirements across sections.
A loader is called as ``loader(data_cfg, seed)`` and returns a :class:`DataBundle` with the
train and test splits held as tensors in memory (images as uint8 N×C×H×W, vectors as float32
N×D), so the training loop indexes tensors and does no per-item Python work.
"""

from __future__ import annotations

from harness.datasets._base import (
    DATA_ROOT_ENV, DATASETS, DataBundle, DatasetKind, DatasetMissing, data_root, dataset_item_shape, dataset_kind,
    load_dataset, prepare_dataset, square_images,
)

__all__ = ["DATASETS", "DATA_ROOT_ENV", "DataBundle", "DatasetKind", "DatasetMissing", "data_root",
           "dataset_item_shape", "dataset_kind", "load_dataset", "prepare_dataset", "square_images"]
