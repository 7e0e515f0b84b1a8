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
"""

from __future__ import annotations

import os
import random
import sys
import time
import warnings
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from harness import distributed
from harness.archs import build_autoencoder
from harness.atomic import atomic_write
from harness.config import RunConfig, check_machine
from harness.errors import ConfigError
from harness.run_folder import same_config
from harness.datasets import DataBundle, load_dataset
from harness.evaluators import build_evaluators
from harness.evaluators._base import latent_map
from harness.precise_bn import bn_layers, recompute_bn_stats
from harness.priors import build_prior
from harness.seeding import derive_seed, make_generator
from methods import REGULARIZERS, RegularizerContext


PREVIOUS_SUFFIX = ".prev"  # checkpoint.pt -> checkpoint.prev.pt: the last good state before it


class CheckpointUnreadable(Exception):
    """No checkpoint of the run could be read; the message is one line saying why."""


def previous_checkpoint(path: Path) -> Path:
    path = Path(path)
    return path.with_name(path.stem + PREVIOUS_SUFFIX + path.suffix)


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError behind an exception (torch.save reports a full disk as ``unexpected pos``)."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def read_checkpoint_config(path: Path) -> dict | None:
    """The config tree stored in a checkpoint, or None when it cannot be read."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:
        return None
    return state.get("config") if isinstance(state, dict) else None


class Diverged(Exception):
    """The loss became NaN or infinite; ``step`` and ``reason`` say where and why."""

    def __init__(self, step: int, reason: str):
        self.step, self.reason = step, reason
        super().__init__(reason)


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when available; on CUDA each process of a run uses ``cuda:local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name, local_rank) if name == "cuda" else torch.device(name)


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


class _Forward(nn.Module):
    """The differentiated part of a step, z = project(f(x)) and x̂ = g(z) (None when
    ``decode`` is off): the module DistributedDataParallel wraps. Outputs are fp32 (under
    bf16 autocast the networks compute in bf16, the losses do not)."""

    def __init__(self, model: nn.Module, project: Callable, decode: bool):
        super().__init__()
        self.model, self.project, self.decode = model, project, decode

    def forward(self, x: torch.Tensor):
        z = self.project(self.model.encoder(x).float())
        return z, (self.model.decoder(z).float() if self.decode else None)


class Trainer:
    """Builds everything a run needs from its config and trains it epoch by epoch."""

    def __init__(self, cfg: RunConfig, run_dir: Path | None = None, data: DataBundle | None = None):
        self.cfg = cfg
        t = cfg.train
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.dist = distributed.current()
        check_machine(cfg)  # e.g. device: cuda in a SLURM job on a node without one: one line
        self.device = resolve_device(t.device, self.dist.local_rank)
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        self._configure_backends()
        self.data = data if data is not None else load_dataset(cfg.data, cfg.seed)
        n_train = len(self.data.train_x)
        self.batch_size = min(t.batch_size, n_train)  # the global batch (all ranks together)
        if self.batch_size % self.dist.world_size:
            raise ConfigError("train.batch_size", f"got {self.batch_size}; allowed: a multiple of the "
                                                  f"{self.dist.world_size} processes of the run")
        self.local_batch = self.batch_size // self.dist.world_size
        self.steps_per_epoch = n_train // self.batch_size  # drop_last: equal batches (BN, queue)
        self.total_steps = self.steps_per_epoch * t.epochs
        on_cuda = self.device.type == "cuda"
        bf16 = t.precision == "bf16" or (t.precision == "auto" and on_cuda and torch.cuda.is_bf16_supported())
        self.amp_dtype = torch.bfloat16 if bf16 else None
        self.channels_last = self.data.is_image and (t.channels_last if t.channels_last is not None else on_cuda)
        self.check_every = t.check_every or (100 if on_cuda else 1)

        torch.manual_seed(derive_seed(cfg.seed, "torch"))
        # Python's and NumPy's global generators as well: the harness draws from neither, but
        # a plug-in or library may, and checkpoints save and restore their states
        random.seed(derive_seed(cfg.seed, "python"))
        np.random.seed(derive_seed(cfg.seed, "numpy") % 2**32)
        self.prior = build_prior(cfg.model.prior, cfg.model.latent_dim)
        method = REGULARIZERS.get(cfg.method.name)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(derive_seed(cfg.seed, "model_init"))
            self.model = build_autoencoder(cfg.model, self.data.item_shape,
                                           method.extra_outputs(cfg.method.params)).to(self.device)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
        if self.dist.enabled and t.sync_bn and any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in self.model.modules()):
            if on_cuda:  # before the regularizer copies the encoder: MoCA's key encoder syncs too
                self.model = nn.SyncBatchNorm.convert_sync_batchnorm(self.model)
            else:
                warnings.warn("train.sync_bn: PyTorch has no SyncBatchNorm on CPU; batch norm uses each "
                              "process's local batch", stacklevel=2)
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
                autocast=self.autocast,
                gather=self.dist.gather,
            ),
        ).to(self.device)
        self.model.latent_map = self.regularizer.latent  # evaluators encode as the method does
        if self.dist.enabled and self.regularizer.optimizers():
            raise ConfigError("method.name", f"{cfg.method.name} trains networks of its own, which DDP does not "
                                             "synchronise; run it in one process")
        if t.compile:  # in place: parameter names (checkpoints) stay those of the plain modules
            self.model.encoder.compile()
            self.model.decoder.compile()
        self._forward: nn.Module = _Forward(self.model, self.regularizer.latent, not t.latent_only)
        if self.dist.enabled:
            self._forward = nn.parallel.DistributedDataParallel(
                self._forward, device_ids=[self.device.index] if on_cuda else None,
                find_unused_parameters=t.latent_only)
        o = cfg.optim
        self.optimizer = torch.optim.Adam(
            self.model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay
        )
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda e: lr_factor(e, o.lr_decay_every, o.lr_decay_factor, o.lr_decay_until)
        )
        # every rank evaluates (collectives such as SyncBN stay in step); rank 0 writes artifacts
        self.evaluators = build_evaluators(cfg, self.data, self.prior, self.device,
                                           self.run_dir if self.dist.is_main else None)
        self._precise_bn_idx = None  # training items whose batch statistics precise BN averages
        if cfg.eval.precise_bn and self.evaluators and bn_layers(self.model):
            n = min(cfg.eval.precise_bn_batches * self.batch_size, n_train)
            g = make_generator(cfg.eval.seed, "precise_bn")
            self._precise_bn_idx = torch.randperm(n_train, generator=g)[:n]
        self.images: dict = {}  # image grids the evaluators made at the last evaluation (for trackers)
        self.notice: str | None = None  # what resume() had to recover from, one line
        self.epoch = 0  # completed epochs
        self.step = 0  # completed optimiser steps
        self._train_x = self._place_data(self.data.train_x)
        # first step whose loss was not finite (-1: none yet) and its (loss, recon, reg)
        self._bad_step = torch.full((), -1, dtype=torch.long, device=self.device)
        self._bad_values = torch.zeros(3, dtype=torch.float64, device=self.device)

    def _configure_backends(self) -> None:
        """CUDA determinism (docs: README "GPU"): deterministic algorithms and no cudnn autotuning
        when ``train.deterministic``, else cudnn picks the fastest kernels (not bitwise stable)."""
        if not torch.cuda.is_available() or self.device.type != "cuda":
            return
        deterministic = self.cfg.train.deterministic
        if deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
        torch.use_deterministic_algorithms(deterministic, warn_only=True)
        torch.backends.cudnn.benchmark = not deterministic
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cuda.matmul.allow_tf32 = not deterministic
        torch.backends.cudnn.allow_tf32 = not deterministic

    def autocast(self):
        """The mixed-precision context of network forward passes (a no-op in fp32)."""
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

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

    def save_checkpoint(self, path: Path) -> None:
        """Write the checkpoint atomically; the one it replaces is kept as ``*.prev.pt`` (the
        fallback when the newest cannot be read). A full disk raises its ``OSError``."""
        state = self.state_dict()
        try:
            atomic_write(path, lambda f: torch.save(state, f), mode="wb", previous=previous_checkpoint(path))
        except RuntimeError as e:
            cause = _os_error_in(e)
            if cause is None:
                raise
            raise OSError(cause.errno, cause.strerror, str(path)) from None

    def load_checkpoint(self, path: Path) -> None:
        self.load_state_dict(torch.load(path, map_location=self.device, weights_only=True))

    def resume(self, path: Path) -> int | None:
        """Load the newest readable checkpoint: ``path``, else the previous one; return its
        epoch, or None when there is none (the run starts from scratch).

        A checkpoint that cannot be read (cut off, corrupt) is removed, and :attr:`notice`
        says, in one line, what was used instead. A readable checkpoint of another config
        raises :class:`ConfigError`.
        """
        path = Path(path)
        self.notice = None
        broken = []
        for candidate in (path, previous_checkpoint(path)):
            if not candidate.exists():
                continue
            try:
                state = torch.load(candidate, map_location=self.device, weights_only=True)
                if not isinstance(state, dict) or "model" not in state:
                    raise ValueError("not a checkpoint of this harness")
            except Exception as e:
                broken.append((candidate, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"))
                continue
            self.load_state_dict(state)
            if broken:
                self.notice = (f"{broken[0][0]}: unreadable ({broken[0][1][:120]}); resumed from "
                               f"{candidate.name} (epoch {self.epoch})")
            for bad, _ in broken:
                bad.unlink(missing_ok=True)
            if candidate != path:  # the next save must not rotate a broken file over this one
                os.replace(candidate, path)
            return self.epoch
        if broken:
            self.notice = (f"{broken[0][0]}: unreadable ({broken[0][1][:120]}) and no earlier checkpoint "
                           "can be read; the run restarts from epoch 0")
            for bad, _ in broken:
                bad.unlink(missing_ok=True)
        return None

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
