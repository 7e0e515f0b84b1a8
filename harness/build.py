"""Everything a run trains with, built from its config in one linear function: :func:`build_run`.

The trainer (:mod:`harness.trainer`) only loops over what this returns; the run folder
(:mod:`harness.run_folder`) owns the files. Order matters for bitwise reproducibility and is
kept in one place: global seeds, then the model (its own init stream), then the regularizer
(which may copy the encoder: MoCA's key encoder), then the DDP wrapper, the optimiser and
its schedule, and the evaluators (which fix their projections and reference statistics).
"""

from __future__ import annotations

import os
import random
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from harness import distributed
from harness.archs import build_autoencoder
from harness.config import RunConfig
from harness.datasets import DataBundle, load_dataset
from harness.errors import ConfigError
from harness.evaluators import build_evaluators
from harness.precise_bn import bn_layers
from harness.priors import Prior, build_prior
from harness.seeding import derive_seed, make_generator
from harness.methods import REGULARIZERS, RegularizerContext


@dataclass
class Batches:
    """How a global batch of ``size`` items is split over the run's processes and epochs."""

    size: int  # the global batch (all ranks together)
    local: int  # this rank's part
    per_epoch: int  # optimiser steps per epoch (drop_last: equal batches for BN and queues)
    total_steps: int


@dataclass
class RunParts:
    """What :func:`build_run` returns: everything the trainer loops over."""

    cfg: RunConfig
    dist: distributed.Dist
    device: torch.device
    data: DataBundle
    batches: Batches
    amp_dtype: torch.dtype | None
    channels_last: bool
    check_every: int
    prior: Prior
    model: nn.Module
    regularizer: nn.Module
    forward: nn.Module  # z, x̂ = forward(x): the differentiated part of a step (DDP-wrapped)
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    evaluators: list
    precise_bn_idx: torch.Tensor | None  # training items whose batch statistics precise BN averages

    def autocast(self):
        return autocast(self.device, self.amp_dtype)


def build_run(cfg: RunConfig, data: DataBundle | None = None, run_dir: Path | None = None) -> RunParts:
    """Model, regularizer, optimiser, schedule and evaluators of the run ``cfg``, on this
    process's device, seeded from ``cfg.seed`` (``data``: an already loaded dataset)."""
    t = cfg.train
    dist = distributed.current()
    check_machine(cfg)  # e.g. device: cuda in a SLURM job on a node without one: one line
    device = resolve_device(t.device, dist.local_rank)
    if t.num_threads:
        torch.set_num_threads(t.num_threads)
    configure_backends(device, t.deterministic)
    data = data if data is not None else load_dataset(cfg.data, cfg.seed)
    batches = split_batches(t.batch_size, t.epochs, len(data.train_x), dist.world_size)
    on_cuda = device.type == "cuda"
    bf16 = t.precision == "bf16" or (t.precision == "auto" and on_cuda and torch.cuda.is_bf16_supported())
    amp_dtype = torch.bfloat16 if bf16 else None
    channels_last = data.is_image and (t.channels_last if t.channels_last is not None else on_cuda)
    seed_global_generators(cfg.seed)
    prior = build_prior(cfg.model.prior, cfg.model.latent_dim)
    model = build_model(cfg, data, device, dist, channels_last)
    regularizer = REGULARIZERS.get(cfg.method.name)(cfg.method.params, RegularizerContext(
        encoder=model.encoder, project=prior.project, prior=prior, latent_dim=cfg.model.latent_dim,
        total_steps=batches.total_steps, generator=make_generator(cfg.seed, "regularizer"), device=device,
        autocast=lambda: autocast(device, amp_dtype), gather=dist.gather,
    )).to(device)
    model.latent_map = regularizer.latent  # evaluators encode as the method does
    if dist.enabled and regularizer.optimizers():
        raise ConfigError("method.name", f"{cfg.method.name} trains networks of its own, which DDP does not "
                                         "synchronise; run it in one process")
    if t.compile:  # in place: parameter names (checkpoints) stay those of the plain modules
        model.encoder.compile()
        model.decoder.compile()
    forward = wrap_forward(_Forward(model, regularizer.latent, not t.latent_only), dist, device, t.latent_only)
    optimizer, scheduler = build_optimizer(cfg, model)
    # every rank evaluates (collectives such as SyncBN stay in step); rank 0 writes artifacts
    evaluators = build_evaluators(cfg, data, prior, device, run_dir if dist.is_main else None)
    precise_bn_idx = None
    if cfg.eval.precise_bn and evaluators and bn_layers(model):
        n = min(cfg.eval.precise_bn_batches * batches.size, len(data.train_x))
        precise_bn_idx = torch.randperm(len(data.train_x), generator=make_generator(cfg.eval.seed, "precise_bn"))[:n]
    return RunParts(cfg, dist, device, data, batches, amp_dtype, channels_last,
                    t.check_every or (100 if on_cuda else 1), prior, model, regularizer, forward,
                    optimizer, scheduler, evaluators, precise_bn_idx)


TRAINING_COPIES = 4  # weights, gradients and Adam's two moments, float32 each


def check_machine(cfg: RunConfig) -> None:
    """What ``cfg`` needs of the machine that trains it here (``train.device: cuda``: a usable
    CUDA device; memory for the model, its gradients and Adam's state), checked before anything starts by the entry points that train on this
    machine (``harness.train``, the sweep's local and debug executors). A sweep submitted to
    SLURM is not checked here: its runs train elsewhere, where the trainer refuses in one line."""
    if cfg.train.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("train.device", "got 'cuda', but this machine has no usable CUDA device; "
                                              "allowed here: auto, cpu")
    check_model_fits(cfg)  # a model that cannot be allocated: one line, not an allocator traceback


def check_model_fits(cfg: RunConfig) -> None:
    """Refuse, in one line naming the model's size settings and the memory it needs, a model
    whose weights, gradients and Adam state do not fit in this machine's memory (the GPU's
    on CUDA, else the RAM). The model is built on the ``meta`` device: nothing is allocated.
    Unknown item shapes (known only once the data is loaded) are not checked."""
    from harness.datasets import dataset_kind

    kind = dataset_kind(cfg.data.name)
    if kind.shape is None:
        return
    method = REGULARIZERS.get(cfg.method.name)
    with torch.device("meta"):
        model = build_autoencoder(cfg.model, kind.shape(cfg.data), method.extra_outputs(cfg.method.params))
    need = TRAINING_COPIES * sum(p.numel() * p.element_size() for p in model.parameters())
    device = resolve_device(cfg.train.device)
    if device.type == "cuda":
        have, where = torch.cuda.get_device_properties(device).total_memory, "GPU memory"
    else:
        have, where = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "RAM"
    if need > have:
        raise ConfigError("model.latent_dim", f"got {cfg.model.latent_dim} (model.arch {cfg.model.arch}): the model "
                                              f"needs {need / 2**30:.3g} GiB for weights, gradients and Adam state; "
                                              f"this machine has {have / 2**30:.3g} GiB of {where}")


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` is CUDA when available; on CUDA each process of a run uses ``cuda:local_rank``."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name, local_rank) if name == "cuda" else torch.device(name)


def configure_backends(device: torch.device, deterministic: bool) -> None:
    """CUDA determinism (README "GPU"): deterministic algorithms and no cudnn autotuning when
    ``train.deterministic``, else cudnn picks the fastest kernels (not bitwise stable)."""
    if not torch.cuda.is_available() or device.type != "cuda":
        return
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # read when cuBLAS starts
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.backends.cuda.matmul.allow_tf32 = not deterministic
    torch.backends.cudnn.allow_tf32 = not deterministic


def autocast(device: torch.device, dtype: torch.dtype | None):
    """The mixed-precision context of network forward passes (a no-op in fp32)."""
    return nullcontext() if dtype is None else torch.autocast(device.type, dtype=dtype)


def split_batches(batch_size: int, epochs: int, n_train: int, world_size: int) -> Batches:
    """The global batch (at most the training set: a larger one is refused), its per-rank
    part and the step counts."""
    if batch_size > n_train:  # known only now for a dataset that declares no size (validation checks the rest)
        raise ConfigError("train.batch_size", f"got {batch_size}; allowed: an integer <= {n_train}, the "
                                              "training items of the loaded data")
    size = batch_size
    check_batch_split(size, world_size)
    per_epoch = n_train // size
    return Batches(size, size // world_size, per_epoch, per_epoch * epochs)


def check_batch_split(batch_size: int, world_size: int) -> None:
    """A global batch must split evenly over the run's processes (DDP); checked before the
    processes join (``harness.train``) and again when the batch is known (:func:`split_batches`)."""
    if batch_size % world_size:
        raise ConfigError("train.batch_size", f"got {batch_size}; allowed: a multiple of the "
                                              f"{world_size} processes of the run")


def seed_global_generators(seed: int) -> None:
    """torch's, Python's and NumPy's global generators: the harness draws from neither of the
    last two, but a plug-in or library may, and checkpoints save and restore their states."""
    torch.manual_seed(derive_seed(seed, "torch"))
    random.seed(derive_seed(seed, "python"))
    np.random.seed(derive_seed(seed, "numpy") % 2**32)


def _is_bn(m: nn.Module) -> bool:
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def build_model(cfg: RunConfig, data: DataBundle, device: torch.device, dist: distributed.Dist,
                channels_last: bool) -> nn.Module:
    """The autoencoder, initialised from its own seed stream, on ``device``."""
    method = REGULARIZERS.get(cfg.method.name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(derive_seed(cfg.seed, "model_init"))
        model = build_autoencoder(cfg.model, data.item_shape, method.extra_outputs(cfg.method.params)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if dist.enabled and cfg.train.sync_bn and any(_is_bn(m) for m in model.modules()):
        if device.type == "cuda":  # before the regularizer copies the encoder: MoCA's key encoder syncs too
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        else:
            warnings.warn("train.sync_bn: PyTorch has no SyncBatchNorm on CPU; batch norm uses each "
                          "process's local batch", stacklevel=2)
    return model


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


def wrap_forward(forward: nn.Module, dist: distributed.Dist, device: torch.device, latent_only: bool) -> nn.Module:
    """The step's forward, in DistributedDataParallel when the run has several processes."""
    if not dist.enabled:
        return forward
    return nn.parallel.DistributedDataParallel(
        forward, device_ids=[device.index] if device.type == "cuda" else None, find_unused_parameters=latent_only)


def lr_factor(epoch: int, every: int | None, factor: float, until: int | None) -> float:
    """Step decay: the lr is multiplied by ``factor`` every ``every`` epochs, up to ``until``."""
    if not every:
        return 1.0
    last = epoch if until is None else min(epoch, until)
    return factor ** (last // every)


def build_optimizer(cfg: RunConfig, model: nn.Module):
    """Adam with the paper's step decay (``optim.lr_decay_*``), stepped once per epoch."""
    o = cfg.optim
    optimizer = torch.optim.Adam(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: lr_factor(e, o.lr_decay_every, o.lr_decay_factor, o.lr_decay_until))
    return optimizer, scheduler
