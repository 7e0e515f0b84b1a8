"""What produced a result: code version, package versions, host and process."""

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
    """The git commit of the harness checkout, or the package version.

    ``git_dirty`` says whether files that can change a run's numbers (code, configs, sweep
    files) differ from that commit; results and documentation do not count.
    """
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10, check=True).stdout.strip()
        # uncommitted edits that can change numbers: code and configs, not results or docs
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)results", ":(exclude)docs", ":(exclude)*.md"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
        return {"git_commit": commit, "git_dirty": bool(dirty)}
    except (OSError, subprocess.SubprocessError):
        return {"git_commit": None, "package_version": _version("moca-harness")}


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


def process_info() -> dict:
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if var in os.environ:
            info[var.lower()] = os.environ[var]
    return info
