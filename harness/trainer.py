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

Speed on accelerators (README "GPU"; every switch is off on CPU unless forced): bf16
autocast of the networks' forward passes (losses in fp32), channels-last activations,
``torch.compile`` of encoder and decoder, the training set resident on the device, and no
host synchronisation per step: the first step with a non-finite loss is recorded on the
device (its index and loss terms) and looked at every ``train.check_every`` steps and at the
end of every epoch, so ``diverged`` still names the exact step and values. On CPU the check
runs every step, before the optimiser step, as it always did.

Several processes (:mod:`harness.distributed`): each rank trains its slice of every global
batch through DistributedDataParallel; rank 0 writes the run folder.

What a run trains with is built by :func:`harness.build.build_run`; this module only loops
(:meth:`Trainer.epochs` yields one metrics row per epoch) and touches no files: the caller
(:mod:`harness.train`) records rows, checkpoints and status in the run folder
(:mod:`harness.run_folder`).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch
from tqdm import tqdm

from harness.build import build_run, lr_factor, resolve_device  # noqa: F401 - lr_factor, resolve_device: API
from harness.config import RunConfig
from harness.datasets import DataBundle
from harness.errors import ConfigError
from harness.evaluators._base import latent_map
from harness.precise_bn import recompute_bn_stats
from harness.run_folder import same_config
from harness.seeding import make_generator


class Diverged(Exception):
    """The loss became NaN or infinite; ``step`` and ``reason`` say where and why."""

    def __init__(self, step: int, reason: str):
        self.step, self.reason = step, reason
        super().__init__(reason)


def reconstruction_loss(x_hat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Squared error summed over all pixels (features) of an item, averaged over the batch."""
    return (x_hat - x).pow(2).flatten(1).sum(1).mean()


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
    """Trains the run of a config epoch by epoch (what it trains with: :func:`build_run`)."""

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, data: DataBundle | None = None):
        self.cfg = cfg
        parts = build_run(cfg, data, Path(run_dir) if run_dir is not None else None)
        self.parts = parts
        self.dist, self.device, self.data = parts.dist, parts.device, parts.data
        self.batch_size, self.local_batch = parts.batches.size, parts.batches.local
        self.steps_per_epoch, self.total_steps = parts.batches.per_epoch, parts.batches.total_steps
        self.amp_dtype, self.channels_last, self.check_every = parts.amp_dtype, parts.channels_last, parts.check_every
        self.prior, self.model, self.regularizer = parts.prior, parts.model, parts.regularizer
        self._forward, self.optimizer, self.scheduler = parts.forward, parts.optimizer, parts.scheduler
        self.evaluators, self._precise_bn_idx = parts.evaluators, parts.precise_bn_idx
        self.images: dict = {}  # image grids the evaluators made at the last evaluation (for trackers)
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps
        self._train_x = self._place_data(self.data.train_x)
        # first step whose loss was not finite (-1: none yet) and its (loss, recon, reg)
        self._bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self._bad_values = torch.zeros(3, dtype=torch.float64, device=self.device)

    def autocast(self):
        """The mixed-precision context of network forward passes (a no-op in fp32)."""
        return self.parts.autocast()

    # ------------------------------------------------------------------ data

    def _place_data(self, x: torch.Tensor) -> torch.Tensor:
        """Keep the training set on the accelerator when it takes at most a quarter of its memory."""
        if self.device.type == "cuda":
            budget = torch.cuda.get_device_properties(self.device).total_memory // 4
            if x.numel() * x.element_size() <= budget:
                return x.to(self.device)
            return x.pin_memory()
        return x

    def batches(self, epoch: int):
        """This rank's part of the batches of ``epoch`` (1-based), in an order fixed by (master
        seed, epoch): rank r of w gets items [r·B/w, (r+1)·B/w) of each global batch of B."""
        g = make_generator(self.cfg.seed, "data_order", epoch)
        perm = torch.randperm(len(self._train_x), generator=g).to(self._train_x.device)  # one copy per epoch
        lo = self.dist.rank * self.local_batch
        for i in range(self.steps_per_epoch):
            start = i * self.batch_size + lo
            xb = self._train_x[perm[start : start + self.local_batch]]
            if xb.device != self.device:
                xb = xb.pin_memory().to(self.device, non_blocking=True)  # uint8 over the bus
            x = self.data.to_float(xb)
            if self.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            yield x

    # ------------------------------------------------------------------ training

    def train_step(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One optimiser step; returns (loss, recon, reg) as detached tensors."""
        with self.autocast():
            z, x_hat = self._forward(x)
        recon = z.new_zeros(()) if x_hat is None else reconstruction_loss(x_hat, x)
        reg = self.regularizer.loss(z, x)
        loss = recon + self.cfg.method.weight * reg
        self._watch(loss, recon, reg)
        if self.check_every == 1:
            self.raise_if_diverged()  # before the optimiser step: the weights stay finite
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.regularizer.after_step(z.detach(), x, self.step)
        self.step += 1
        return loss.detach(), recon.detach(), reg.detach()

    @torch.no_grad()
    def _watch(self, loss: torch.Tensor, recon: torch.Tensor, reg: torch.Tensor) -> None:
        """Remember, on the device (no synchronisation), the first step with a non-finite loss."""
        first = (self._bad_step < 0) & ~torch.isfinite(loss)
        self._bad_step = torch.where(first, self.step, self._bad_step)
        values = torch.stack([loss.detach(), recon.detach(), reg.detach()]).double()
        self._bad_values = torch.where(first, values, self._bad_values)

    def raise_if_diverged(self) -> None:
        """Raise :class:`Diverged` naming the first step (over all ranks) whose loss was not
        finite, with its loss terms; one host synchronisation."""
        mine = torch.cat([self._bad_step.double().view(1), self._bad_values]).view(1, 4)
        rows = self.dist.gather(mine).cpu()  # one row per rank
        steps = torch.where(rows[:, 0] >= 0, rows[:, 0], torch.inf)
        rank = int(steps.argmin())
        if not torch.isfinite(steps[rank]):
            return
        step, loss, recon, reg = rows[rank].tolist()
        step = int(step)
        where = f" on rank {rank}" if self.dist.enabled else ""
        self.epoch, self.step = step // self.steps_per_epoch, step  # the run stopped there
        raise Diverged(step, f"non-finite loss at step {step} (epoch {self.epoch + 1}){where}: "
                             f"loss={loss}, recon={recon}, reg={reg}")

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
            if self.check_every > 1 and self.step % self.check_every == 0:
                self.raise_if_diverged()
        self.raise_if_diverged()
        self.scheduler.step()
        self.epoch += 1
        sums = self.dist.sum(sums) / self.dist.world_size  # the mean over ranks = over the global batch
        mean = (sums / max(1, self.steps_per_epoch)).tolist()
        row = {"epoch": self.epoch, "step": self.step, "loss": mean[0], "recon": mean[1], "reg": mean[2],
               "lr": lr, "epoch_time_s": time.perf_counter() - start}
        row.update({f"reg_{k}": float(v) for k, v in logs.items()})
        if progress is not None:
            progress.set_postfix(loss=f"{mean[0]:.4g}", epoch=self.epoch)
        return row

    def precise_bn(self) -> None:
        """Re-estimate the batch-norm statistics on the fixed training batches (harness/precise_bn.py)."""
        idx, bs = self._precise_bn_idx, self.batch_size
        batches = (self.data.to_float(self.data.train_x[idx[i : i + bs]]).to(self.device)
                   for i in range(0, len(idx), bs))
        to_latent = latent_map(self.model, self.prior)  # the evaluators' map (the method's, e.g. S-VAE's mean)
        recompute_bn_stats(self.model, batches, lambda x: self.model.decoder(to_latent(self.model.encoder(x))))

    def evaluate(self, final: bool = False) -> dict:
        if not self.evaluators:
            return {}
        start = time.perf_counter()
        if self._precise_bn_idx is not None:
            self.precise_bn()
        self.model.eval()
        out: dict[str, float] = {}
        with torch.no_grad():
            for ev in self.evaluators:
                out.update(ev(self.model, self.epoch, final))
                self.images.update(ev.take_images())
        self.model.train()
        out["eval_time_s"] = time.perf_counter() - start
        return out

    def health_warnings(self) -> list[str]:
        """Warnings about the trained model (:mod:`harness.health`: latent collapse) and from
        the regularizer (e.g. a solver that did not converge). Draws only from its own stream."""
        from harness.health import latent_collapse

        n = min(1000, len(self._train_x))
        self.model.eval()
        with torch.no_grad():
            z = torch.cat([
                self.prior.project(self.model.encoder(
                    self.data.to_float(self._train_x[i:min(i + self.batch_size, n)]).to(self.device))).float().cpu()
                for i in range(0, n, self.batch_size)])
        self.model.train()
        prior = self.prior.sample(n, generator=make_generator(self.cfg.seed, "health"))
        found = latent_collapse(z, prior)
        return ([found] if found else []) + list(self.regularizer.run_warnings())

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
        if not same_config(state.get("config"), self.cfg):
            raise ConfigError("", "the checkpoint was written by a run with a different config")
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.regularizer.load_checkpoint_state(state["regularizer"])
        _set_rng_state(state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])

    # ------------------------------------------------------------------ loop

    def epochs(self) -> Iterator[dict]:
        """Train until ``train.epochs``, yielding each epoch's metrics row (after the yield
        returns, the caller records it: metrics line, checkpoint, status).

        When starting from scratch with evaluators, an ``epoch 0`` row holds the metrics of
        the initial model (the start of the paper's convergence curves). Raises
        :class:`Diverged` on a non-finite loss.
        """
        if self.epoch == 0 and self.evaluators and self.cfg.eval.every > 0:
            yield {"epoch": 0, "step": 0, **self.evaluate()}
        with tqdm(total=self.total_steps, initial=self.step, desc=self._label(), unit="step",
                  disable=not self._show_progress(), dynamic_ncols=True, leave=False) as bar:
            while self.epoch < self.cfg.train.epochs:
                row = self.train_epoch(bar)
                if self.should_evaluate():
                    row.update(self.evaluate(final=self.epoch == self.cfg.train.epochs))
                yield row

    def fit(self, on_epoch: Callable[[dict], None]) -> None:
        """Train until ``train.epochs``, handing each metrics row to ``on_epoch``."""
        for row in self.epochs():
            on_epoch(row)

    def _label(self) -> str:
        m = self.cfg.method
        return f"{m.name} λ={m.weight:g} seed={self.cfg.seed}"

    def _show_progress(self) -> bool:
        mode = self.cfg.train.progress
        return mode == "on" or (mode == "auto" and sys.stderr.isatty())
