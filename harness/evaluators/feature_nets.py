"""Feature networks of the image metrics: their settings, loading, and the per-run provider.

The one owner of the feature networks. A metric in a feature space (``fid``, ``prdc``, or a
new one: one file) names the network it uses, ``inception`` or ``lenet``
(:data:`FEATURE_NETS`), and asks the run's provider, ``ctx.features`` (:class:`FeatureNetworks`),
for it and for reference statistics in its space; it never reads another metric's settings.

* ``inception``: pytorch-fid's FID Inception network, ``dims`` features (paper scale;
  :mod:`harness.metrics.fid`).
* ``lenet``: the domain classifier trained by the harness on the dataset's full training
  split, trained once and cached (CPU scale; :mod:`harness.metrics.lenet`,
  :mod:`harness.evaluators.lenet_training`). Needs a labelled image dataset.

**Settings** (:class:`FeatureNetConfig`: ``dims``, ``weights``, ``batch_size``, ``cache_dir``)
are declared and checked here only. Their YAML keys stay in the ``eval.fid`` block (``FIDConfig``
extends this class), where they were before, so the run ids of committed results do not change.

**Identity**: a :class:`FeatureNet` is named by ``<name>-<dims>`` (e.g. ``lenet-128``,
``inception-2048``: :meth:`FeatureNet.label`, the unit of every value measured in it) and
identified by the sha256 of its weights; :meth:`FeatureNet.provenance` is what each result
records. Reference statistics come from the content-addressed cache of
:mod:`harness.evaluators.feature_cache`, whose key each run's provenance names.

For callers outside a run (the sweep's preflight, benchmarks): :func:`load_or_train_feature_net`
gets one network for a run config (training it if absent), and
:func:`harness.evaluators._base.prepare_feature_nets` every network that a run config's metrics
need (it lives beside the registry it reads, so this module does not import the registry back).
"""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from harness.errors import ConfigError, require
from harness.evaluators import feature_cache as C
from harness.metrics.fid import FID_WEIGHTS_SHA256, FeatureStats

FEATURE_NETS = ("inception", "lenet")
INCEPTION_EXTRACTOR = "pytorch-fid-inception/inception_features-v1"


@dataclass
class FeatureNetConfig:
    """The feature networks' settings (YAML: in the ``eval.fid`` block, see the module doc)."""

    weights: str | None = None  # local pt_inception-2015-12-05-6726825d.pth; None = pytorch-fid's download
    cache_dir: str = "results/.cache/fid"  # reference statistics (content-addressed), shared by every run
    batch_size: int = 200  # images per forward pass of a feature network
    dims: int = 2048  # Inception feature block (pytorch-fid's --dims); 2048 = pool3. lenet: always 128

    def check(self, p: str) -> None:
        require(self.dims in (64, 192, 768, 2048), f"{p}.dims", self.dims, "64, 192, 768 or 2048 (pytorch-fid's --dims)")
        require(self.batch_size >= 1, f"{p}.batch_size", self.batch_size, "an integer >= 1")


def settings(run_cfg) -> FeatureNetConfig:
    """The feature-network settings of a run config (the fields of :class:`FeatureNetConfig`)."""
    block = run_cfg.eval.fid
    return FeatureNetConfig(**{f.name: getattr(block, f.name) for f in dataclasses.fields(FeatureNetConfig)})


def check_network(cfg, network: str, key: str) -> None:
    """Config-time check of a metric's ``features`` choice: the domain classifier (``lenet``)
    is trained on class labels, so the dataset must have them."""
    from harness.datasets import dataset_kind

    if network == "lenet" and not dataset_kind(cfg.data.name).class_labels:
        raise ConfigError(key, f"'lenet' is trained on class labels and {cfg.data.name} has none; "
                               "allowed: inception")


@dataclass
class FeatureNet:
    name: str
    dims: int
    weights_path: Path
    weights_sha256: str
    test_accuracy: float | None  # of the domain classifier on the full test split; None for inception
    extract: Callable[[torch.Tensor], np.ndarray]  # uint8 N×C×H×W → float64 N × dims
    extractor: str  # code version of the feature extractor (part of every cache key)
    key: str  # content key of the network (for lenet: its cache entry)

    @property
    def label(self) -> str:
        """The unit of values measured in this space, e.g. ``lenet-128``, ``inception-2048``."""
        return f"{self.name}-{self.dims}"

    def provenance(self) -> dict:
        """What identifies the feature space, for result files and figure captions."""
        return {"features": self.name, "dims": self.dims, "feature_space": self.label,
                "weights_path": str(self.weights_path), "weights_sha256": self.weights_sha256,
                "weights_are_official": self.weights_sha256 == FID_WEIGHTS_SHA256,
                "test_accuracy": self.test_accuracy, "extractor": self.extractor, "feature_net_key": self.key,
                "caption": self.caption()}

    def caption(self) -> str:
        """A short label, e.g. ``lenet-128 (sha256 1a2b3c4d5e6f, test acc. 99.17%)``."""
        acc = f", test acc. {100 * self.test_accuracy:.2f}%" if self.test_accuracy is not None else ""
        return f"{self.label} (sha256 {self.weights_sha256[:12]}{acc})"


def full_splits(cfg, data):
    """The dataset of the run as published: whole training and test splits, no validation
    hold-out (the domain network is trained and tested on them, whatever a run uses); ``data``
    itself when the run uses them as they are."""
    d = cfg.data
    if data is not None and d.train_limit is None and d.test_limit is None and not d.val_size:
        return data
    from harness.datasets import load_dataset

    return load_dataset(dataclasses.replace(d, train_limit=None, test_limit=None, val_size=0), cfg.seed)


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def load_or_train_feature_net(name: str, cfg, data=None, device: str | torch.device = "cpu",
                              notice: Callable[[str], None] = _stderr) -> FeatureNet:
    """The feature network ``name`` for the run config ``cfg`` on its dataset (``data``: the
    run's DataBundle, loaded here when None), trained and cached first if absent (``lenet``)."""
    from harness.metrics import fid as M

    s = settings(cfg)
    if name == "inception":
        net = M.load_fid_network(s.weights, s.dims, device)
        key = C.content_key({"network": "inception", "dims": net.dims, "weights_sha256": net.weights_sha256,
                             "extractor": INCEPTION_EXTRACTOR})
        return FeatureNet("inception", net.dims, net.weights_path, net.weights_sha256, None,
                          lambda images: M.inception_features(images, net, s.batch_size, device),
                          INCEPTION_EXTRACTOR, key)
    if name == "lenet":
        from harness.evaluators.lenet_training import load_or_train
        from harness.metrics.lenet import EXTRACTOR_VERSION, lenet_features

        full = full_splits(cfg, data)
        if full.train_y is None or full.train_y.dim() != 1:
            raise ConfigError("eval.fid.features", f"'lenet' is trained on class labels and {full.name} has none; "
                                                   "allowed: inception")
        net = load_or_train(full.name, full.train_x, full.train_y, full.test_x, full.test_y, notice=notice)
        return FeatureNet("lenet", net.dims, net.weights_path, net.weights_sha256, net.test_accuracy,
                          lambda images: lenet_features(images, net.net, device=device), EXTRACTOR_VERSION, net.key)
    raise ValueError(f"unknown feature network {name!r}; allowed: {', '.join(FEATURE_NETS)}")


class FeatureNetworks:
    """The feature-network provider of one run's evaluators (``ctx.features``): each network is
    loaded (or trained) once, on the first request, and shared by every metric in its space."""

    def __init__(self, cfg, data, device, notice: Callable[[str], None] = _stderr):
        self.cfg, self.data, self.device, self.notice = cfg, data, device, notice
        self.settings = settings(cfg)
        self._nets: dict[str, FeatureNet] = {}

    def get(self, name: str) -> FeatureNet:
        if name not in self._nets:
            self._nets[name] = load_or_train_feature_net(name, self.cfg, self.data, self.device, self.notice)
        return self._nets[name]

    def reference(self, net: FeatureNet, images: torch.Tensor, split: str) -> tuple[FeatureStats, dict]:
        """Statistics of the reference ``images`` (of ``split``) in ``net``'s space, from the
        verified content-addressed cache (``cache_dir``). Returns (stats, provenance entry:
        reference_cache, reference_cache_key, reference_read_from_cache)."""
        found = C.stats_determinants(self.data.name, split, images, net)
        stats, entry = C.reference_statistics(self.settings.cache_dir, found, images, net.dims, net.extract,
                                              self.notice)
        return stats, {"reference_cache": entry["path"], "reference_cache_key": entry["key"],
                       "reference_read_from_cache": entry["read_from_cache"]}

    def batch_size(self) -> int:
        return self.settings.batch_size
