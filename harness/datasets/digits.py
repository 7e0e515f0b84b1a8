"""scikit-learn's handwritten digits: 1,797 images of 1×8×8 pixels, labels 0-9, offline.

Not in the paper: a small *real* image set that ships with scikit-learn, so CPU-scale runs
and tests exercise the image pipeline without any download (``load_digits``, the UCI
optical-recognition test set). Pixel values 0..16 become uint8 ``round(v * 255 / 16)``.

There is no official split: a permutation drawn from the stream ``"digits_split"`` of the
master seed (``harness.seeding``) puts 1,500 images in training and the other 297 in test,
so the split is reproducible for a seed and independent of every other random stream.
"""

from __future__ import annotations

import numpy as np
import torch

from harness.datasets._base import DATASETS, DataBundle, DatasetKind, square_images
from harness.datasets._images import make_bundle
from harness.seeding import make_generator

N_TRAIN = 1500


def digits_uint8() -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 images as uint8 N×1×8×8 in [0, 255] and their int64 labels."""
    from sklearn.datasets import load_digits
    d = load_digits()
    images = torch.from_numpy(np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)).unsqueeze(1)
    return images, torch.from_numpy(d.target).long()


@DATASETS.register("digits", kind=DatasetKind(image=True, class_labels=True, shape=square_images(1, 8)))
def load_digits_dataset(data_cfg, seed: int = 0) -> DataBundle:
    images, labels = digits_uint8()
    perm = torch.randperm(len(images), generator=make_generator(seed, "digits_split"))
    train, test = perm[:N_TRAIN], perm[N_TRAIN:]
    return make_bundle("digits", data_cfg, images[train], images[test], labels[train], labels[test])
