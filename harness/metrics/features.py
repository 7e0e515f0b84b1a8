"""Feature spaces of the image metrics (FID/KID, precision/recall/density/coverage).

``eval.fid.features`` and ``eval.prdc.features`` name one of :data:`FEATURE_NETS`:

* ``inception``: pytorch-fid's FID Inception network, ``eval.fid.dims`` features (paper scale;
  :mod:`harness.metrics.fid`).
* ``lenet``: the domain classifier trained by the harness on the dataset's training split
  and cached under the data root (``data.root`` or ``$MOCA_DATA_ROOT``) (CPU scale; :mod:`harness.metrics.lenet`). Needs a labelled
  image dataset.

:func:`load_feature_net` returns a :class:`FeatureNet`: the extractor (uint8 images → float64
N × dims features) and what identifies the space (name, dims, weights sha256, test accuracy),
which every result computed in it records (:meth:`FeatureNet.provenance`); values from two
feature spaces are never comparable.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

FEATURE_NETS = ("inception", "lenet")


@dataclass
class FeatureNet:
    name: str
    dims: int
    weights_path: Path
    weights_sha256: str
    test_accuracy: float | None  # of the domain classifier on the full test split; None for inception
    extract: Callable[[torch.Tensor], np.ndarray]  # uint8 N×C×H×W → float64 N × dims

    def provenance(self) -> dict:
        """What identifies the feature space, for result files and figure captions."""
        return {"features": self.name, "dims": self.dims, "weights_path": str(self.weights_path),
                "weights_sha256": self.weights_sha256, "test_accuracy": self.test_accuracy}

    def caption(self) -> str:
        """A short label, e.g. ``lenet (sha256 1a2b3c4d5e6f, test acc. 99.17%)``."""
        acc = f", test acc. {100 * self.test_accuracy:.2f}%" if self.test_accuracy is not None else ""
        return f"{self.name}-{self.dims} (sha256 {self.weights_sha256[:12]}{acc})"


def full_splits(cfg, data):
    """The dataset of the run as published: whole training and test splits, no validation
    hold-out (the domain network is trained and tested on them, whatever a run uses); ``data``
    itself when the run uses them as they are."""
    d = cfg.data
    if d.train_limit is None and d.test_limit is None and not d.val_size:
        return data
    from harness.datasets import load_dataset

    return load_dataset(dataclasses.replace(d, train_limit=None, test_limit=None, val_size=0), cfg.seed)


def load_feature_net(name: str, cfg, data, device, batch_size: int = 200) -> FeatureNet:
    """The feature network ``name`` for the run ``cfg`` on ``data`` (a DataBundle)."""
    if name == "inception":
        from harness.metrics import fid as M

        c = cfg.eval.fid
        net = M.load_fid_network(c.weights, c.dims, device)
        return FeatureNet("inception", net.dims, net.weights_path, net.weights_sha256, None,
                          lambda images: M.inception_features(images, net, batch_size, device))
    if name == "lenet":
        from harness.datasets import data_root
        from harness.metrics import lenet as L

        full = full_splits(cfg, data)
        if full.train_y is None or full.train_y.dim() != 1:
            raise ValueError(f"the lenet feature network needs class labels; {data.name} has none")
        net = L.load_or_train(data_root(cfg.data), data.name, full.train_x, full.train_y, full.test_x, full.test_y)
        return FeatureNet("lenet", net.dims, net.weights_path, net.weights_sha256, net.test_accuracy,
                          lambda images: L.lenet_features(images, net, device=device))
    raise ValueError(f"unknown feature network {name!r}; allowed: {', '.join(FEATURE_NETS)}")
