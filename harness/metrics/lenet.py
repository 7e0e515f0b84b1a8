"""The domain feature network ``lenet``: the architecture and its features (pure functions).

At CPU scale (MNIST, minutes on two cores) pytorch-fid's Inception network is both slow
(about 12 minutes for 2,000 images here) and blind to the domain (28×28 digits upsampled to
299×299 ImageNet inputs). The Fréchet distance, KID, precision/recall/density/coverage can
instead be computed in the penultimate-layer features of a small classifier of the dataset
itself, as the "domain FID" of the MNIST literature (e.g. the LeNet features of Bińkowski et
al. 2018, Sec. 5).

**Architecture** (:class:`LeNet`): images are resized to 28×28 (bilinear, antialiased; a
no-op for MNIST) and go through conv 5×5 (16) → ReLU → max-pool 2 → conv 5×5 (32) → ReLU →
max-pool 2 → linear 512→128 → ReLU (the **features**, 128-d) → linear 128→classes.
:data:`EXTRACTOR_VERSION` names this code; change it with the architecture or
:func:`lenet_features`, so cached networks and statistics made by the old code are not reused.

Training (the recipe), caching and verification are the evaluator side's business:
:mod:`harness.evaluators.lenet_training` and :mod:`harness.evaluators.feature_cache`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

NAME = "lenet"
FEATURE_DIMS = 128
INPUT_SIDE = 28
EXTRACTOR_VERSION = "lenet-16-32-128-v1/features-v1"


class LeNet(nn.Module):
    """LeNet-style classifier; :meth:`features` is its 128-d penultimate layer."""

    def __init__(self, in_channels: int = 1, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 16, 5)
        self.conv2 = nn.Conv2d(16, 32, 5)
        self.fc1 = nn.Linear(32 * 4 * 4, FEATURE_DIMS)
        self.fc2 = nn.Linear(FEATURE_DIMS, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Float images in [0, 1], N×C×H×W → N×128 (post-ReLU) features."""
        if x.shape[-2:] != (INPUT_SIDE, INPUT_SIDE):
            x = F.interpolate(x, size=(INPUT_SIDE, INPUT_SIDE), mode="bilinear", align_corners=False,
                              antialias=min(x.shape[-2:]) > INPUT_SIDE)
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        return F.relu(self.fc1(x.flatten(1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.features(x))


def lenet_features(images: torch.Tensor, net: LeNet, batch_size: int = 1000,
                   device: str | torch.device = "cpu") -> np.ndarray:
    """Penultimate-layer features (N × 128, float64) of uint8 N×C×H×W images."""
    if images.dtype != torch.uint8:
        raise TypeError(f"lenet_features takes uint8 images (see fid.quantize), got {images.dtype}")
    net = net.to(device).eval()
    out = np.empty((len(images), FEATURE_DIMS))
    with torch.no_grad():
        for i in range(0, len(images), batch_size):
            batch = images[i : i + batch_size].to(device).float().div(255.0)
            out[i : i + len(batch)] = net.features(batch).double().cpu().numpy()
    return out
