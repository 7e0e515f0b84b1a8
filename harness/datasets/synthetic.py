"""The paper's synthetic latent-matching data (section 4.1, Fig. 2 left).

``data.num_points`` (paper: 1000) points in R^``data.input_dim`` (paper: 100), drawn from a
standard Gaussian. The draw is fixed (it depends on the size only, not on the run's master
seed), so every method and every seed of a sweep matches the same point cloud; the seed of
a run changes the network initialisation and the batch order. A held-out draw of a fifth
of the size serves as the test split.
"""

from __future__ import annotations

import torch

from harness.datasets._base import DATASETS, DataBundle, DatasetKind
from harness.seeding import make_generator


@DATASETS.register("synthetic")
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


load_synthetic.kind = DatasetKind(image=False, class_labels=False)
