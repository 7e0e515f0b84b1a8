"""One run on several processes (DistributedDataParallel): process group, ranks, collectives.

A run is spread over ``world_size`` processes by ``torchrun`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``) or by SLURM (``srun``, one
task per GPU; :func:`export_slurm_env` turns ``SLURM_PROCID`` ... into the same variables
through submitit). :func:`init_from_env` starts the process group (NCCL on CUDA, gloo on
CPU) when ``WORLD_SIZE > 1``; the trainer then reads :func:`current` and

* gives each rank the slice ``[r·B/w, (r+1)·B/w)`` of every global batch of ``B`` items (the
  same permutation on every rank, so the global batch is the single-process one);
* wraps the autoencoder in DDP (gradients averaged over ranks, i.e. the gradient of the
  global batch mean for the per-item losses of Eq. 5);
* hands regularizers :meth:`Dist.gather` (MoCA enqueues the keys of every rank, as MoCo does);
* lets rank 0 alone write the run folder (status, metrics, checkpoints); every rank resumes
  from the same ``checkpoint.pt``.

Single-process runs see ``Dist(rank=0, world_size=1)`` and every collective is the identity.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as tdist


@dataclass(frozen=True)
class Dist:
    """This process's place in the run: ``rank`` of ``world_size`` (``local_rank`` on its node)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def gather(self, t: torch.Tensor) -> torch.Tensor:
        """The concatenation (rank order, dim 0) of ``t`` from every rank; no gradient."""
        if not self.enabled:
            return t
        parts = [torch.empty_like(t) for _ in range(self.world_size)]
        tdist.all_gather(parts, t.contiguous())
        return torch.cat(parts)

    def sum(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over ranks (a new tensor)."""
        if not self.enabled:
            return t
        t = t.clone()
        tdist.all_reduce(t)
        return t

    def broadcast_object(self, obj):
        """Rank 0's ``obj`` (picklable) on every rank; ``obj`` itself in a one-process run."""
        if not self.enabled:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.enabled:
            tdist.barrier()


def current() -> Dist:
    """The process group this process belongs to (world size 1 when none is initialised)."""
    if not (tdist.is_available() and tdist.is_initialized()):
        return Dist()
    return Dist(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def world_size_from_env() -> int:
    return int(os.environ.get("WORLD_SIZE", "1") or 1)


def export_slurm_env() -> None:
    """Under ``srun`` with several tasks, set torchrun's variables from SLURM's (submitit's
    ``TorchDistributedEnvironment``: master = the job's first node)."""
    if int(os.environ.get("SLURM_NTASKS", "1") or 1) > 1 and "RANK" not in os.environ:
        import submitit

        submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)


def init_from_env(device: str = "auto", timeout_s: float = 1800.0) -> Dist:
    """Join the run's process group when ``WORLD_SIZE > 1`` (once); return :func:`current`.

    The backend is NCCL when the run trains on CUDA (each rank on ``cuda:LOCAL_RANK``) and
    gloo otherwise (CPU runs, and the tests).
    """
    if world_size_from_env() <= 1 or (tdist.is_available() and tdist.is_initialized()):
        return current()
    use_cuda = device != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    tdist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(seconds=timeout_s))
    return current()


def shutdown(together: bool = False) -> None:
    """Leave the process group. ``together`` (every rank ended the run normally): first wait
    for all ranks, so no rank tears its connections down while another still uses them (rank 0
    writes the run's last checkpoint and status after the last collective)."""
    if tdist.is_available() and tdist.is_initialized():
        if together and tdist.get_world_size() > 1:
            tdist.barrier()
        tdist.destroy_process_group()
