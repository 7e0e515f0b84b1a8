"""A dataset's files on disk: verified in place against known md5 sums, downloaded from mirrors.

* **Verified in place** (:func:`verify`): a file found under the data root is checked against
  its known md5 once; the verdict is remembered in a stamp keyed by the file's resolved path,
  size and mtime (so a later run pays a ``stat``, not a hash), stored under the harness's cache
  folder (:func:`cache_root`: ``$MOCA_CACHE_DIR``, else ``~/.cache/moca-harness``), never in the
  data root, which may be a read-only or shared copy. A file whose md5 differs (truncated, not
  gzip, garbage, the other split's file under this name) is :class:`DataFileError`: one line
  naming the file and what to do.
* **Downloaded from mirrors** (:func:`download`): each missing file is fetched from the first
  mirror that has it, md5-checked, with torchvision's progress bar, into a temporary name and
  then renamed (an interrupted download never leaves a half file under the real name). The
  mirrors are the dataset's own, or only ``$MOCA_DATA_MIRROR`` when that is set (a URL under
  which the files lie, e.g. an internal server, or ``python -m http.server`` in a folder that
  holds them: docs/data.md).
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from harness.atomic import hash_file
from harness.cache_dir import CACHE_ENV, cache_root  # noqa: F401  (the one cache folder)
from harness.datasets._base import DATA_ROOT_ENV, DatasetMissing

MIRROR_ENV = "MOCA_DATA_MIRROR"
STAMPS = "verified"


class DataFileError(DatasetMissing):
    """A data file is present but is not the file it should be (md5 differs, unreadable)."""


def md5_file(path: Path) -> str:
    return hash_file(path, "md5")


def _stamp_path(path: Path, md5: str) -> Path:
    key = hashlib.sha256(f"{path}\0{md5}".encode()).hexdigest()[:32]
    return cache_root() / STAMPS / f"{key}.json"


def _signature(path: Path) -> dict:
    st = path.stat()
    return {"path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def verify(path: Path, md5: str, fix: str) -> None:
    """Check ``path`` against ``md5`` (stamped, see the module docstring); :class:`DataFileError`
    naming the file and ``fix`` (what the user should do) when it differs or cannot be read."""
    path = Path(path).resolve()
    try:
        sig = _signature(path)
        stamp = _stamp_path(path, md5)
        try:
            if json.loads(stamp.read_text()) == {**sig, "md5": md5}:
                return
        except (OSError, ValueError):
            pass
        got = md5_file(path)
    except OSError as e:
        raise DataFileError(f"{path}: cannot be read ({e.strerror or e}); {fix}") from None
    if got != md5:
        raise DataFileError(f"{path}: md5 {got} differs from the known {md5} (truncated, corrupt, or another "
                            f"file under this name); {fix}")
    try:
        from harness.atomic import write_json

        write_json(stamp, {**sig, "md5": md5})
    except OSError:
        pass  # no writable cache: the file is hashed again next time, nothing else changes


def mirrors(default: list[str]) -> list[str]:
    """The URLs to download from: only ``$MOCA_DATA_MIRROR`` when set, else ``default``."""
    env = os.environ.get(MIRROR_ENV, "").strip()
    if env:
        return [env if env.endswith("/") else env + "/"]
    return list(default)


def download(folder: Path, files: list[tuple[str, str]], urls: list[str]) -> str | None:
    """Fetch each ``(file name, md5)`` of ``files`` into ``folder`` from the first of ``urls``
    that serves it; None when all arrived, else why the first one that could not be fetched
    failed (one line)."""
    from torchvision.datasets.utils import download_url

    from harness.datasets._images import one_line

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"cannot create {folder}: {e.strerror or e}"
    for name, md5 in files:
        errors = []
        for url in urls:
            part = folder / f"{name}.part"
            try:
                download_url(url + name, str(folder), filename=part.name, md5=md5)
                os.replace(part, folder / name)
                break
            except Exception as e:  # noqa: BLE001 - urllib, http and md5 errors alike: try the next mirror
                errors.append(f"{url}: {one_line(e)}")
                part.unlink(missing_ok=True)
        else:
            return f"{name} from " + "; ".join(errors)
    return None


def missing_message(dataset: str, folder: Path, names: list[str], download_on: bool, why: str | None) -> str:
    """The one line of a dataset whose files are not there: where, which files, and every way
    to get them (download, ``MOCA_DATA_MIRROR``, ``MOCA_DATA_ROOT``)."""
    files = ", ".join(names)
    offline = (f"offline, point {DATA_ROOT_ENV} (or data.root) at a folder holding them, or {MIRROR_ENV} at a "
               f"URL that serves them")
    if download_on:
        return f"{dataset}: {files} not under {folder} and the download failed ({why}); {offline}"
    return (f"{dataset}: {files} not under {folder}; set data.download=true to fetch them on first use "
            f"(needs internet or {MIRROR_ENV}), or {offline}")
