"""The resources of a sweep's runs: the ``slurm`` block (each array job's sbatch options) and
the ``local`` block (GPU placement of the local executor), with their one-line checks."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

from harness.config import ConfigError, from_dict, require, require_choice
from harness.dotted import set_path

# sbatch options a sweep may add besides the named ones; values end up in `#SBATCH --k=v`
# lines, so they are restricted to characters that cannot start a new line or a command
SLURM_EXTRA = ["account", "qos", "constraint", "exclude", "nodelist", "reservation", "comment",
               "mail_type", "mail_user", "gres", "licenses", "wckey"]
SLURM_SAFE_VALUE = re.compile(r"\A[A-Za-z0-9_.,:=@%+/\[\]-]{1,200}\Z")  # \Z: "$" allows a final newline
SLURM_SAFE_ALLOWED = "1-200 characters from letters, digits and _ . , : = @ % + / [ ] -"


# ---------------------------------------------------------------------------- slurm block


@dataclass
class SlurmConfig:
    """Resources of each array job of the slurm executor (one job = one run)."""

    partition: str | None = None
    time: int = 60  # minutes per job; a run that needs longer is requeued and resumes
    gpus_per_node: int = 0
    tasks_per_run: int = 1  # >1: one run on that many processes of one node (DDP, one GPU each)
    runs_per_task: int = 1  # >1: each array job trains that many runs at once, sharing its GPUs
    cpus_per_task: int = 2  # also the run's torch thread count
    mem_gb: float | None = None  # None = the partition's default
    array_parallelism: int = 32  # array tasks running at once (per submitted array)
    max_requeues: int = 3  # requeues after a timeout (preemptions requeue without limit)
    signal_delay_s: int = 120  # USR2 this long before the time limit, to checkpoint and requeue
    extra: dict = field(default_factory=dict)  # allow-listed sbatch options (SLURM_EXTRA)

    def check(self, p: str = "slurm") -> None:
        if self.partition is not None:
            require(bool(SLURM_SAFE_VALUE.match(self.partition)), f"{p}.partition", self.partition, SLURM_SAFE_ALLOWED)
        require(self.time >= 1, f"{p}.time", self.time, "an integer >= 1 (minutes)")
        require(self.gpus_per_node >= 0, f"{p}.gpus_per_node", self.gpus_per_node, "an integer >= 0")
        require(self.tasks_per_run >= 1, f"{p}.tasks_per_run", self.tasks_per_run, "an integer >= 1")
        require(self.runs_per_task >= 1, f"{p}.runs_per_task", self.runs_per_task, "an integer >= 1")
        require(self.runs_per_task == 1 or self.tasks_per_run == 1, f"{p}.runs_per_task", self.runs_per_task,
                "1 when slurm.tasks_per_run > 1 (a DDP run has its GPUs to itself)")
        require(self.gpus_per_node in (0, self.tasks_per_run) or self.tasks_per_run == 1, f"{p}.gpus_per_node",
                self.gpus_per_node, f"0 or slurm.tasks_per_run ({self.tasks_per_run}): one GPU per process of a run")
        require(self.cpus_per_task >= 1, f"{p}.cpus_per_task", self.cpus_per_task, "an integer >= 1")
        require(self.mem_gb is None or self.mem_gb > 0, f"{p}.mem_gb", self.mem_gb, "null or a number > 0")
        require(self.array_parallelism >= 1, f"{p}.array_parallelism", self.array_parallelism, "an integer >= 1")
        require(self.max_requeues >= 0, f"{p}.max_requeues", self.max_requeues, "an integer >= 0")
        require(0 <= self.signal_delay_s < self.time * 60, f"{p}.signal_delay_s", self.signal_delay_s,
                "an integer >= 0 and below the time limit in seconds")
        for key, value in self.extra.items():
            require_choice(key, f"{p}.extra.{key}", SLURM_EXTRA)
            ok = isinstance(value, (str, int)) and not isinstance(value, bool) and SLURM_SAFE_VALUE.match(str(value))
            require(bool(ok), f"{p}.extra.{key}", value, SLURM_SAFE_ALLOWED)


def parse_slurm(data: Any, sets: list[tuple[list[str], Any]]) -> SlurmConfig:
    """Build the slurm block from the sweep file's mapping and ``--set slurm.k=v`` overrides."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("slurm", f"expected a mapping of keys, got {data!r}")
    data = copy.deepcopy(data)
    for path, value in sets:
        set_path(data, path, value, label=".".join(["slurm", *path]))
    extra = data.pop("extra", None) or {}
    if not isinstance(extra, dict):
        raise ConfigError("slurm.extra", f"got {extra!r}; allowed: a mapping of sbatch options ({', '.join(SLURM_EXTRA)})")
    cfg = from_dict(SlurmConfig, data, "slurm")
    cfg.extra = dict(extra)
    cfg.check()
    return cfg


# ---------------------------------------------------------------------------- local block


@dataclass
class LocalConfig:
    """GPU placement of the local executor (``--gpus`` / ``--workers-per-gpu`` override it)."""

    gpus: list[int] | None = None  # GPU indices to use; None = every visible GPU
    workers_per_gpu: int = 1  # runs trained at once on each GPU (CPU-scale runs leave a GPU idle)

    def check(self, p: str = "local") -> None:
        require(self.workers_per_gpu >= 1, f"{p}.workers_per_gpu", self.workers_per_gpu, "an integer >= 1")
        require(self.gpus is None or (len(self.gpus) > 0 and all(g >= 0 for g in self.gpus)
                                      and len(set(self.gpus)) == len(self.gpus)),
                f"{p}.gpus", self.gpus, "null or a list of distinct GPU indices >= 0")


def parse_local(data: Any) -> LocalConfig:
    cfg = from_dict(LocalConfig, data, "local")
    cfg.check()
    return cfg
