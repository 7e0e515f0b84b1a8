"""The harness's own cache folder, one definition for every cache (verified-data stamps,
feature networks, reference statistics).

``$MOCA_CACHE_DIR`` when set, else ``$XDG_CACHE_HOME/moca-harness`` (``~/.cache/moca-harness``);
never a data root, which may be a copy shared with others (docs/data.md).
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "MOCA_CACHE_DIR"


def cache_root() -> Path:
    """The cache folder (not created here)."""
    env = os.environ.get(CACHE_ENV)
    if env:
        return Path(env).expanduser()
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "moca-harness"
