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


def process_info() -> dict:
    info = {"host": socket.gethostname(), "pid": os.getpid()}
    for var in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID"):
        if var in os.environ:
            info[var.lower()] = os.environ[var]
    return info
