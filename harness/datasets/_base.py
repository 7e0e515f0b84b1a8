"""The in-memory dataset container and the dataset registry."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from harness.registry import Registry

DATASETS: Registry = Registry("dataset", package="harness.datasets")


class DatasetMissing(RuntimeError):
    """A dataset is not on disk (and cannot be downloaded); the message is one line saying
    where it was looked for and how to get it."""


@dataclass
class DataBundle:
    """Train/test splits as tensors. Images are uint8 in [0, 255]; vectors are float32."""

    name: str
    train_x: torch.Tensor
    test_x: torch.Tensor
    train_y: torch.Tensor | None = None
    test_y: torch.Tensor | None = None

    @property
    def item_shape(self) -> tuple[int, ...]:
        return tuple(self.train_x.shape[1:])

    @property
    def is_image(self) -> bool:
        return self.train_x.dim() == 4

    @property
    def num_pixels(self) -> int:
        return int(torch.tensor(self.item_shape).prod())

    @staticmethod
    def to_float(batch: torch.Tensor) -> torch.Tensor:
        """uint8 images -> float32 in [0, 1]; float tensors pass through."""
        if batch.dtype == torch.uint8:
            return batch.float().div_(255.0)
        return batch.float()


def load_dataset(data_cfg, seed: int = 0) -> DataBundle:
    return DATASETS.get(data_cfg.name)(data_cfg, seed)
