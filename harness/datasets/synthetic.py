"""The paper's synthetic latent-matching data (section 4.1, Fig. 2 left).

``data.num_points`` (paper: 1000) points in R^``data.input_dim`` (paper: 100), drawn from a
standard Gaussian. The draw is fixed (it depends on the size only, not on the run's master
seed), so every method and every seed of a sweep matches the same point cloud; the seed of
a run changes the network initialisation and the batch order. A held-out draw of a fifth
of the size serves as the test split.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.datasets._base import DATASETS, DataBundle, DatasetKind
from harness.errors import require
from harness.seeding import make_generator


@dataclass
class SyntheticConfig:
    """The synthetic task's own keys under ``data:``."""

    num_points: int = 1000  # number of points (paper: 1000)
    input_dim: int = 100  # dimension of the points (paper: 100)

    def check(self, p: str) -> None:
        require(self.num_points >= 2, f"{p}.num_points", self.num_points, "an integer >= 2")
        require(self.input_dim >= 1, f"{p}.input_dim", self.input_dim, "an integer >= 1")


@DATASETS.register("synthetic", Config=SyntheticConfig,
                   kind=DatasetKind(image=False, class_labels=False, shape=lambda c: (c.input_dim,),
                                    train_items=lambda c: c.num_points))
def load_synthetic(data_cfg, seed: int) -> DataBundle:
    n, d = data_cfg.num_points, data_cfg.input_dim
    g = make_generator(0, "synthetic", n, d)
    train = torch.randn(n, d, generator=g)
    test = torch.randn(max(1, n // 5), d, generator=g)
    if data_cfg.train_limit:
        train = train[: data_cfg.train_limit]
    if data_cfg.test_limit:
        test = test[: data_cfg.test_limit]
    return DataBundle("synthetic", train_x=train, test_x=test)
