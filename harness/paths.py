"""Path confinement, one definition for every folder the harness writes into (results, run
folders, caches): a name or path that would leave its root is :class:`PathEscape`.

Torch-free and import-free of the rest of the harness, so any layer may use it.
"""

from __future__ import annotations

from pathlib import Path


class PathEscape(ValueError):
    """A name or path that would leave the folder it belongs to."""


def inside(root: Path, path: Path) -> Path:
    """``path`` resolved, or :class:`PathEscape` when it is not strictly inside ``root``."""
    root_r, path_r = Path(root).resolve(), Path(path).resolve()
    if path_r == root_r or root_r not in path_r.parents:
        raise PathEscape(f"{path} is outside {root}")
    return path_r
