"""What produced a result: code version, package versions, the machine's processor, host and process."""

from __future__ import annotations

import functools
import os
import platform
import socket
import subprocess
from importlib import metadata
from pathlib import Path

_PACKAGES = ("torch", "torchvision", "numpy", "POT", "pytorch-fid", "submitit", "pandas", "moca-harness")


@functools.lru_cache(maxsize=1)
def code_version() -> dict:
    """The git commit of the harness checkout (and :func:`git_state`), or the package version."""
    root = Path(__file__).resolve().parent.parent
    try:
        return git_state(root)
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "package_version": _version("moca-harness")}


# paths whose changes cannot change a run's numbers: results, documentation, notes
_NOT_CODE = [":(exclude)results", ":(exclude)docs", ":(exclude)*.md"]


def git_state(root: Path) -> dict:
    """``git_commit`` of the checkout at ``root``; ``git_dirty``: whether files that can
    change a run's numbers (code, configs, sweep files) differ from it, counting untracked
    files (a new, uncommitted sweep file makes a run as irreproducible from the commit as
    an edit does) but not ignored ones (data, caches); ``git_dirty_files``: the first ten."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10,
                              check=True).stdout

    commit = git("rev-parse", "HEAD").strip()
    lines = git("status", "--porcelain", "--untracked-files=all", "--", ".", *_NOT_CODE).splitlines()
    files = [line[3:] for line in lines if line.strip()]
    return {"git_commit": commit, "git_dirty": bool(files), "git_dirty_files": files[:10]}


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def package_versions() -> dict:
    out = {name: _version(name) for name in _PACKAGES}
    out["python"] = platform.python_version()
    return out


@functools.lru_cache(maxsize=1)
def machine_info(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """The processor a run computed on, because it decides the low bits of every number:
    PyTorch's CPU kernels (oneDNN, MKL) pick their code path by the instruction set and model
    of the processor, so the same code, packages, config and seed give bitwise the same run on
    one processor model and runs that differ from the first step at about 1e-4 relative on
    another (seen between two Intel Xeon models, bench/README.md). ``cpu``: the model name;
    ``cpu_id``: vendor/family/model/stepping (Linux); ``torch_cpu_capability``: the widest
    vector instruction set PyTorch dispatches to (e.g. AVX512). A run on a GPU adds ``gpu``, its
    model name (harness.train)."""
    info = {"cpu": platform.processor() or None, "cpu_id": None, "arch": platform.machine()}
    try:
        fields = {}
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's block is enough
            fields.setdefault(key.strip(), value.strip())
        info["cpu"] = fields.get("model name") or info["cpu"]
        parts = [fields.get(k) for k in ("vendor_id", "cpu family", "model", "stepping")]
        info["cpu_id"] = "/".join(parts) if all(parts) else None
    except OSError:
        pass
    try:
        import torch

        info["torch_cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    except (ImportError, AttributeError):
        info["torch_cpu_capability"] = None
    return info


def process_info() -> dict:
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if var in os.environ:
            info[var.lower()] = os.environ[var]
    return info
