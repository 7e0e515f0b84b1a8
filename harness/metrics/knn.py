"""k-nearest-neighbour classification accuracy of latent codes: class structure as a number.

The paper claims MoCA "learns perceptually distinguishable class clusters similar to S-VAE"
(section 4.3, Fig. 7, a t-SNE picture). The standard number for it (the kNN monitor of
self-supervised representation learning, e.g. Wu et al. 2018, Sec. 3.4) is the accuracy of a
k-NN classifier that labels each test latent by a majority vote of its k nearest training
latents (Euclidean distance on the prior's support; uniform weights; a tie between classes
goes to the smallest label, as scikit-learn's ``KNeighborsClassifier`` breaks it, which
tests/test_knn.py checks against).
"""

from __future__ import annotations

import torch


def knn_predict(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, k: int,
                chunk: int = 1024) -> torch.Tensor:
    """Predicted labels of ``test_z`` (M × d) from the ``k`` nearest rows of ``train_z`` (N × d)."""
    if not 1 <= k <= len(train_z):
        raise ValueError(f"k must be in [1, {len(train_z)}], got {k}")
    train_z, test_z = train_z.double(), test_z.double()
    num_classes = int(train_y.max()) + 1
    out = torch.empty(len(test_z), dtype=torch.long)
    for i in range(0, len(test_z), chunk):
        idx = torch.cdist(test_z[i : i + chunk], train_z).topk(k, dim=1, largest=False).indices
        votes = torch.zeros(len(idx), num_classes).scatter_add_(1, train_y[idx], torch.ones(idx.shape))
        out[i : i + chunk] = votes.argmax(1)  # the first (smallest) label among equal counts
    return out


def knn_accuracy(train_z: torch.Tensor, train_y: torch.Tensor, test_z: torch.Tensor, test_y: torch.Tensor,
                 k: int) -> float:
    """Fraction of ``test_z`` whose k-NN vote equals ``test_y``."""
    return float((knn_predict(train_z, train_y, test_z, k) == test_y).double().mean())
