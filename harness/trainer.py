"""The common WAE trainer: reconstruction + λ · latent regularizer (the paper's Eq. 5).

    L = (1/B) Σ_i ‖x_i − g(f(x_i))‖²  +  λ · R(f(x_1..x_B))

with the squared error summed over pixels and averaged over the batch (docs/paper.md), Adam with
the paper's step decay, and any regularizer from :mod:`methods` (this module never names
one). With ``train.latent_only`` the reconstruction term is dropped (the synthetic task of
section 4.1).

Reproducibility: the master seed ``cfg.seed`` drives every random stream through
:func:`harness.seeding.derive_seed` (model init, per-epoch data order, the regularizer's
generator). At the end of every epoch a checkpoint holds the model, optimiser, scheduler,
regularizer state and all RNG states; a run resumed from it finishes with exactly the same
weights and metrics as one never interrupted (bitwise on CPU).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from tqdm import tqdm

from harness.archs import build_autoencoder
from harness.atomic import atomic_write
from harness.config import RunConfig, config_from_dict, same_run
from harness.datasets import DataBundle, load_dataset
from harness.evaluators import build_evaluators
from harness.priors import build_prior
from harness.seeding import derive_seed, make_generator
from methods import REGULARIZERS, RegularizerContext


class Diverged(Exception):
    """The loss became NaN or infinite; ``step`` and ``reason`` say where and why."""

    def __init__(self, step: int, reason: str):
        self.step, self.reason = step, reason
        super().__init__(reason)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over all pixels (features) of an item, averaged over the batch."""
    return (x_hat - x).pow(2).flatten(1).sum(1).mean()


def lr_factor(epoch: int, every: int | None, factor: float, until: int | None) -> float:
    """Step decay: the lr is multiplied by ``factor`` every ``every`` epochs, up to ``until``."""
    if not every:
        return 1.0
    last = epoch if until is None else min(epoch, until)
    return factor ** (last // every)


def _rng_state() -> dict:
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "gauss": float(gauss)},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(_as_tuple(state["python"]))
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _as_tuple(x):
    return tuple(_as_tuple(v) for v in x) if isinstance(x, (list, tuple)) else x


class Trainer:
    """Builds everything a run needs from its config and trains it epoch by epoch."""

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, data: DataBundle | None = None):
        self.cfg = cfg
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.device = resolve_device(cfg.train.device)
        if cfg.train.num_threads:
            torch.set_num_threads(cfg.train.num_threads)
        self.data = data if data is not None else load_dataset(cfg.data, cfg.seed)
        n_train = len(self.data.train_x)
        self.batch_size = min(cfg.train.batch_size, n_train)
        self.steps_per_epoch = n_train // self.batch_size  # drop_last: equal batches (BN, queue)
        self.total_steps = self.steps_per_epoch * cfg.train.epochs

        torch.manual_seed(derive_seed(cfg.seed, "torch"))
        self.prior = build_prior(cfg.model.prior, cfg.model.latent_dim)
        method = REGULARIZERS.get(cfg.method.name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "model_init"))
            self.model = build_autoencoder(cfg.model, self.data.item_shape,
                                           method.extra_outputs(cfg.method.params)).to(self.device)
        self.regularizer = method(
            cfg.method.params,
            RegularizerContext(
                encoder=self.model.encoder,
                project=self.prior.project,
                prior=self.prior,
                latent_dim=cfg.model.latent_dim,
                total_steps=self.total_steps,
                generator=make_generator(cfg.seed, "regularizer"),
                device=self.device,
            ),
        ).to(self.device)
        self.model.latent_map = self.regularizer.latent  # evaluators encode as the method does
        o = cfg.optim
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: lr_factor(e, o.lr_decay_every, o.lr_decay_factor, o.lr_decay_until)
        )
        self.evaluators = build_evaluators(cfg, self.data, self.prior, self.device, self.run_dir)
        self.images: dict = {}  # image grids the evaluators made at the last evaluation (for trackers)
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps
        self._train_x = self._place_data(self.data.train_x)

    # ------------------------------------------------------------------ data

    def _place_data(self, x: torch.Tensor) -> torch.Tensor:
        """Keep the training set on the accelerator when it is small enough (≤ 2 GB)."""
        if self.device.type == "cuda" and x.numel() * x.element_size() <= 2 << 30:
            return x.to(self.device)
        return x

    def batches(self, epoch: int):
        """The batches of ``epoch`` (1-based) in an order fixed by (master seed, epoch)."""
        g = make_generator(self.cfg.seed, "data_order", epoch)
        perm = torch.randperm(len(self._train_x), generator=g)
        for i in range(self.steps_per_epoch):
            idx = perm[i * self.batch_size : (i + 1) * self.batch_size].to(self._train_x.device)
            yield self.data.to_float(self._train_x[idx]).to(self.device, non_blocking=True)

    # ------------------------------------------------------------------ training

    def train_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step; returns (loss, recon, reg) as detached tensors."""
        z = self.regularizer.latent(self.model.encoder(x))  # default: the prior's projection
        if self.cfg.train.latent_only:
            recon = z.new_zeros(())
        else:
            recon = reconstruction_loss(self.model.decoder(z), x)
        reg = self.regularizer.loss(z, x)
        loss = recon + self.cfg.method.weight * reg
        if not torch.isfinite(loss):
            raise Diverged(
                self.step,
                f"non-finite loss at step {self.step} (epoch {self.epoch + 1}): "
                f"loss={loss.item()}, recon={recon.item()}, reg={reg.item()}",
            )
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.regularizer.after_step(z.detach(), x, self.step)
        self.step += 1
        return loss.detach(), recon.detach(), reg.detach()

    def train_epoch(self, progress: tqdm | None = None) -> dict:
        """Train one epoch; return its mean losses, lr, step count and duration."""
        self.model.train()
        self.regularizer.train()
        lr = self.optimizer.param_groups[0]["lr"]
        start = time.perf_counter()
        sums = torch.zeros(3, dtype=torch.float64, device=self.device)
        logs: dict[str, float] = {}
        for x in self.batches(self.epoch + 1):
            loss, recon, reg = self.train_step(x)
            sums += torch.stack([loss, recon, reg]).double()
            logs = self.regularizer.logs
            if progress is not None:
                progress.update(1)
        self.scheduler.step()
        self.epoch += 1
        mean = (sums / max(1, self.steps_per_epoch)).tolist()
        row = {"epoch": self.epoch, "step": self.step, "loss": mean[0], "recon": mean[1], "reg": mean[2],
               "lr": lr, "epoch_time_s": time.perf_counter() - start}
        row.update({f"reg_{k}": float(v) for k, v in logs.items()})
        if progress is not None:
            progress.set_postfix(loss=f"{mean[0]:.4g}", epoch=self.epoch)
        return row

    def evaluate(self, final: bool = False) -> dict:
        if not self.evaluators:
            return {}
        self.model.eval()
        out: dict[str, float] = {}
        start = time.perf_counter()
        with torch.no_grad():
            for ev in self.evaluators:
                out.update(ev(self.model, self.epoch, final))
                self.images.update(ev.take_images())
        self.model.train()
        out["eval_time_s"] = time.perf_counter() - start
        return out

    def should_evaluate(self) -> bool:
        every = self.cfg.eval.every
        last = self.epoch == self.cfg.train.epochs
        return bool(self.evaluators) and (last or (every > 0 and self.epoch % every == 0))

    # ------------------------------------------------------------------ checkpoints

    def state_dict(self) -> dict:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "regularizer": self.regularizer.checkpoint_state(),
            "rng": _rng_state(),
            "config": self.cfg.to_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        # re-resolved, so defaults added to the harness since the checkpoint do not count
        if not same_run(config_from_dict(state["config"]).to_dict(), self.cfg.to_dict()):
            raise ValueError("the checkpoint was written by a run with a different config")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.regularizer.load_checkpoint_state(state["regularizer"])
        _set_rng_state(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])

    def save_checkpoint(self, path: Path) -> None:
        state = self.state_dict()
        atomic_write(path, lambda f: torch.save(state, f), mode="wb")

    def load_checkpoint(self, path: Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    # ------------------------------------------------------------------ loop

    def fit(self, on_epoch: Callable[[dict], None], on_checkpoint: Callable[[], None] | None = None) -> None:
        """Train until ``train.epochs``; ``on_epoch(row)`` receives each metrics row.

        When starting from scratch with evaluators, an ``epoch 0`` row holds the metrics of
        the initial model (the start of the paper's convergence curves). Raises
        :class:`Diverged` on a non-finite loss.
        """
        if self.epoch == 0 and self.evaluators and self.cfg.eval.every > 0:
            on_epoch({"epoch": 0, "step": 0, **self.evaluate()})
        total = self.total_steps
        with tqdm(total=total, initial=self.step, desc=self._label(), unit="step",
                  disable=not self._show_progress(), dynamic_ncols=True, leave=False) as bar:
            while self.epoch < self.cfg.train.epochs:
                row = self.train_epoch(bar)
                if self.should_evaluate():
                    row.update(self.evaluate(final=self.epoch == self.cfg.train.epochs))
                on_epoch(row)
                if on_checkpoint is not None:
                    on_checkpoint()

    def _label(self) -> str:
        m = self.cfg.method
        return f"{m.name} λ={m.weight:g} seed={self.cfg.seed}"

    def _show_progress(self) -> bool:
        mode = self.cfg.train.progress
        return mode == "on" or (mode == "auto" and sys.stderr.isatty())
