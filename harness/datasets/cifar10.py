"""CIFAR-10 (Krizhevsky, 2009): 50,000 training and 10,000 test images, 3×32×32, 10 classes.

The paper's main benchmark (Table 2, Figs. 2, 3 and 8: 50k/10k). Loaded with
``torchvision.datasets.CIFAR10`` from ``<data root>/cifar-10-batches-py`` (:func:`harness.datasets.data_root`), downloaded there
on first use with ``data.download`` (the default; torchvision checks the md5 of the archive and
of every batch file, with a progress bar); the images are its ``.data`` array, HWC, turned into one
N×3×32×32 uint8 tensor without per-item transforms.
"""

from __future__ import annotations


import torch

from harness.datasets._base import DATASETS, DataBundle, DatasetKind, DatasetMissing, data_root, offline_hint, square_images
from harness.datasets._images import make_bundle, one_line


def _split(ds: CIFAR10) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.from_numpy(ds.data).permute(0, 3, 1, 2)  # N×H×W×C -> N×C×H×W
    return x, torch.as_tensor(ds.targets, dtype=torch.int64)


@DATASETS.register("cifar10", kind=DatasetKind(image=True, class_labels=True, shape=square_images(3, 32)))
def load_cifar10(data_cfg, seed: int = 0) -> DataBundle:
    from torchvision.datasets import CIFAR10
    root = data_root(data_cfg)
    folder = root / CIFAR10.base_folder
    try:
        train = CIFAR10(str(root), train=True, download=data_cfg.download)
        test = CIFAR10(str(root), train=False, download=data_cfg.download)
    except (RuntimeError, OSError) as e:
        if data_cfg.download:
            raise DatasetMissing(
                f"CIFAR-10 not found under {folder} and the download failed ({one_line(e)}); "
                + offline_hint(f"a folder holding {CIFAR10.base_folder}/ (extracted from {CIFAR10.filename})")
            ) from None
        state = "not found" if not folder.is_dir() else "incomplete or corrupted (md5 check failed)"
        raise DatasetMissing(
            f"CIFAR-10 {state} under {folder}; set data.download=true to fetch it on first use (needs internet), "
            f"or {offline_hint(f'a folder holding {CIFAR10.base_folder}/ (extracted from {CIFAR10.filename})', lead=False)}"
        ) from None
    train_x, train_y = _split(train)
    test_x, test_y = _split(test)
    return make_bundle("cifar10", data_cfg, train_x, test_x, train_y, test_y)
