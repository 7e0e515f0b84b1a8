"""Atomic file writes: a temporary file in the same folder, fsync, then rename.

A reader (or a run killed mid-write) therefore sees either the old file or the new one,
never a half-written one. Concurrent writers of *different* files never collide because
each temporary name is unique.

Permissions: ``mkstemp`` creates the temporary file with mode 0600 whatever the umask, and
the rename would keep it, so group members on a shared cluster could not read results.
Each file is therefore given the mode an ordinary ``open(path, "w")`` would give it,
0666 & ~umask (0644 under the usual umask 022, 0664 under 002).
"""

from __future__ import annotations

import hashlib

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def current_umask() -> int:
    """The process umask, read without changing it (``os.umask`` sets it while reading,
    which would race with other threads creating files)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # no /proc: the classic read-by-setting, restored at once
    os.umask(mask)
    return mask


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "w",
                 previous: str | os.PathLike | None = None) -> None:
    """Call ``write(fileobj)`` on a temporary file, then rename it onto ``path``.

    With ``previous``, the file that ``path`` held is first renamed to ``previous`` (kept as
    the last good version); a kill between the two renames leaves ``previous`` in place.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        if previous is not None and path.exists():
            os.replace(path, previous)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write(path, lambda f: f.write(text))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json_text(obj))


def json_text(obj: Any) -> str:
    """The text :func:`write_json` writes for ``obj``."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_text_if_changed(path: str | os.PathLike, text: str) -> bool:
    """:func:`write_text` unless the file already holds ``text`` (then nothing is written, not
    even its time stamp: rerunning a finished sweep leaves a committed results folder as it
    was). Returns whether it wrote."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return False
    except (OSError, UnicodeDecodeError):
        pass
    write_text(path, text)
    return True


def read_json(path: str | os.PathLike) -> Any:
    with open(path) as f:
        return json.load(f)


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    """Rewrite a whole JSON-lines file atomically (used to truncate on resume)."""
    write_text(path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))


def append_jsonl(path: str | os.PathLike, row: dict) -> None:
    """Append one JSON line atomically: the file is rewritten through a rename.

    Metrics files are small (one line per epoch), so rewriting is cheap and guarantees a
    kill never leaves a truncated last line.
    """
    rows = read_jsonl(path) if Path(path).exists() else []
    rows.append(row)
    write_jsonl(path, rows)


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def hash_file(path: str | Path, algorithm: str = "sha256", chunk: int = 1 << 20) -> str:
    """Hex digest of a file's bytes, read in chunks (data files, weights, checkpoints)."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
