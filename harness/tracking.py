"""Live views of a run while it trains: experiment trackers fed by the run loop.

A tracker receives every metrics row (:meth:`Tracker.log_epoch`, the same dict that becomes a
line of ``metrics.jsonl``), the labelled image grids an evaluator made at that evaluation
(:meth:`Tracker.log_images`: the ``artifacts`` evaluator's samples, reconstructions and
interpolations), and at the end the run's final state and metrics (:meth:`Tracker.close`).
Trackers only read what the run produces; they never change a number, so their switches are
execution-only (:data:`harness.config.EXECUTION_ONLY`).

``train.tensorboard: true`` writes TensorBoard event files to ``<run dir>/tensorboard/``
(:class:`TensorBoardTracker`): scalars per epoch (``train/loss``, ``train/recon``, ...,
``eval/<metric>``), the image grids under ``grids/<name>``, and the run's hyper-parameters
with its final metrics through the HParams plugin, so that

    tensorboard --logdir results/<sweep>

compares every run of a sweep (one run per folder, hyper-parameters in the HPARAMS tab). A
resumed run drops the events it logs again (``purge_step``), so curves have no duplicates.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

import numpy as np

from harness.dotted import flatten

TENSORBOARD_DIR = "tensorboard"
TRAIN_KEYS = {"loss", "recon", "reg", "lr", "epoch_time_s", "step"}
SKIP = {"epoch"}
FINAL_PREFIX = "final/"
# hyper-parameters shown in the HParams table: the keys a study usually varies
HPARAM_PREFIXES = ("method.", "model.", "optim.", "data.name", "data.image_size", "data.train_limit",
                   "train.epochs", "train.batch_size", "seed")


class Tracker(ABC):
    """One live view of a run (see the module docstring)."""

    @abstractmethod
    def log_epoch(self, row: dict[str, Any]) -> None: ...

    def log_images(self, images: dict[str, np.ndarray], epoch: int) -> None:
        """H×W×3 uint8 grids by name (nothing by default)."""

    @abstractmethod
    def close(self, state: str, final: dict[str, float]) -> None: ...


def hparams_of(config: dict) -> dict[str, float | str | bool]:
    """The config keys of :data:`HPARAM_PREFIXES` as values TensorBoard accepts."""
    out: dict[str, float | str | bool] = {}
    for key, value in sorted(flatten(config).items()):
        if not key.startswith(HPARAM_PREFIXES):
            continue
        if isinstance(value, bool) or isinstance(value, str):
            out[key] = value
        elif isinstance(value, (int, float)):
            out[key] = float(value)
        else:
            out[key] = json.dumps(value)
    return out


def scalar_name(key: str) -> str:
    return f"train/{key}" if key in TRAIN_KEYS or key.startswith("reg_") else f"eval/{key}"


def _finite_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


class TensorBoardTracker(Tracker):
    """TensorBoard event files in ``<run dir>/tensorboard/`` (torch.utils.tensorboard)."""

    def __init__(self, run_dir: Path, config: dict, start_epoch: int):
        from torch.utils.tensorboard import SummaryWriter

        self.folder = Path(run_dir) / TENSORBOARD_DIR
        self.config = config
        # a resumed run logs its epochs after the checkpoint again: hide the older copies
        self.writer = SummaryWriter(str(self.folder), purge_step=start_epoch + 1 if start_epoch > 0 else None)

    def log_epoch(self, row: dict[str, Any]) -> None:
        epoch = int(row["epoch"])
        for key, value in row.items():
            if key not in SKIP and _finite_number(value):
                self.writer.add_scalar(scalar_name(key), float(value), epoch)
        self.writer.flush()

    def log_images(self, images: dict[str, np.ndarray], epoch: int) -> None:
        for name, image in images.items():
            self.writer.add_image(f"grids/{name}", image, epoch, dataformats="HWC")
        self.writer.flush()

    def close(self, state: str, final: dict[str, float]) -> None:
        """The HParams record (hyper-parameters, final metrics, and ``final/done``: 1 for a
        run that finished, 0 for a diverged or failed one), written into the run's own
        event files (SummaryWriter.add_hparams would open a second run folder)."""
        from torch.utils.tensorboard.summary import hparams

        metrics = {FINAL_PREFIX + k: float(v) for k, v in final.items() if k not in SKIP and _finite_number(v)}
        metrics[FINAL_PREFIX + "done"] = 1.0 if state == "done" else 0.0
        step = int(final.get("epoch", 0)) if _finite_number(final.get("epoch")) else 0
        for summary in hparams(hparams_of(self.config), metrics):
            self.writer.file_writer.add_summary(summary, step)
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.close()


def build_trackers(cfg, run_dir: Path | None, start_epoch: int = 0) -> list[Tracker]:
    """The trackers a run's config switches on (none without a run folder)."""
    if run_dir is None:
        return []
    trackers: list[Tracker] = []
    if cfg.train.tensorboard:
        trackers.append(TensorBoardTracker(run_dir, cfg.to_dict(), start_epoch))
    return trackers


__all__ = ["TENSORBOARD_DIR", "TensorBoardTracker", "Tracker", "build_trackers", "hparams_of"]
