"""The run folder: its files, states, lock, "same config?" check and broken-file recovery.

Results on disk are the API (docs/design.md "A run folder"). This module is the one place
that knows the layout (checkpoint rotation and recovery included: :meth:`RunFolder.resume_point`),
and it imports no torch at import time (only the checkpoint functions load it) and no
scheduler code, so ``harness.train``,
the sweep engine, ``harness.collect`` and ``harness.figures`` all read and write run folders
through it::

    <results>/<sweep>/            a sweep folder: sweep.json (the manifest), runs.csv, curves.csv,
                                  search.json (a searched sweep's stages and selections)
    <results>/<sweep>/<run id>/   a run folder (the id is 12 hex digits: the config's hash)
        config.json     resolved RunConfig.to_dict()
        status.json     {"state": running|interrupted|done|diverged|failed, "epoch", "step", ...}
        metrics.jsonl   one JSON object per epoch (epoch 0 = evaluation at initialisation)
        checkpoint.pt   the training state after the last completed epoch
        checkpoint.prev.pt  the one before it (the fallback and the rollback target)
        error.txt       the traceback of a crashed run
        train.log       the output of a run started by the local executor
        .lock           held (flock) by the process that trains the run

States recorded in ``status.json`` by the trainer: ``running``, ``done``, ``diverged``,
``failed``; ``interrupted`` is written for a SLURM job that ended without the trainer
finishing. :func:`disk_state` derives the state from the folder alone (``pending`` without a
status; a ``running`` status of this machine whose process is gone is ``interrupted``); the
sweep engine adds ``queued`` from the scheduler (:mod:`harness.sweep.state`).

Broken files (a run killed by the kernel, a full disk, a hand edit) never make a run fail
for good: :func:`read_metrics` keeps every readable line and reports torn, unreadable or
missing lines; a run resumes from the newest readable checkpoint that is not ahead of the
last intact metrics line (:meth:`RunFolder.resume_point`), so a lost line is retrained, never
skipped; a finished run records the size and SHA-256 of its checkpoint and metrics
(:meth:`RunFolder.record_final`) and a rerun that finds them changed resumes from what is
intact (:meth:`RunFolder.final_damage`); a run folder whose ``config.json`` or
``status.json`` cannot be read is recovered by :mod:`harness.train` where it can tell what
the run was.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from harness.paths import PathEscape, inside  # noqa: F401  (re-exported)
from harness.atomic import atomic_write, hash_file, write_json, write_text

if TYPE_CHECKING:  # the config module is imported lazily: it pulls in the plug-in registries
    from harness.config import RunConfig

# ---------------------------------------------------------------------------- names

CONFIG, STATUS, METRICS, CHECKPOINT, ERROR, LOG, LOCK = (
    "config.json", "status.json", "metrics.jsonl", "checkpoint.pt", "error.txt", "train.log", ".lock")
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"  # the checkpoint that checkpoint.pt replaced
MANIFEST = "sweep.json"  # the sweep folder's manifest (written by the sweep engine)
SEARCH_FILE = "search.json"  # a searched sweep's stages and selections (harness.sweep.search)
TRIAL, FIXED, TUNED = "trial", "fixed", "tuned"  # the stages of a searched sweep's runs
# the metrics every metrics.jsonl line has from the training loop (reg_<name>: a regularizer's own
# diagnostics), as shell patterns; the evaluators' are their ``logs`` (harness/evaluators/_base.py)
TRAINING_METRICS = ("loss", "recon", "reg", "reg_*")
# files a run folder may hold before its config.json exists (the lock, the local executor's log)
PRE_CONFIG_FILES = {LOCK, LOG}

PENDING, QUEUED, RUNNING, INTERRUPTED = "pending", "queued", "running", "interrupted"
DONE, DIVERGED, FAILED = "done", "diverged", "failed"
STATES = [DONE, DIVERGED, FAILED, INTERRUPTED, RUNNING, QUEUED, PENDING]  # summary order
FINAL = (DONE, DIVERGED)  # never rerun: a divergence is a result of the config and seed
# status.json "failure" of a run that failed because its data was missing or damaged: not a result
# of the run, so it is shown (and started again) as pending; the sweep checks the data first
DATA_FAILURE = "data"

PID_SLACK_S = 5.0  # clock granularity allowed between a process start and its status write

SWEEP_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
SWEEP_NAME_ALLOWED = "1-64 characters from letters, digits, '_', '-', '.', starting with a letter or digit"
RUN_ID_RE = re.compile(r"[0-9a-f]{12}")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ---------------------------------------------------------------------------- paths


def valid_sweep_name(name: Any) -> bool:
    return isinstance(name, str) and SWEEP_NAME_RE.fullmatch(name) is not None


def sweep_dir(results_root: str | Path, name: str) -> Path:
    """``<results root>/<name>``, refusing names that are not plain folder names."""
    if not valid_sweep_name(name):
        raise PathEscape(f"sweep name {name!r} is not allowed; allowed: {SWEEP_NAME_ALLOWED}")
    root = Path(results_root)
    inside(root, root / name)
    return root / name


def run_dir(sweep_folder: Path, rid: str) -> Path:
    """The folder of run ``rid`` inside a sweep folder (ids are 12 lowercase hex digits)."""
    if not isinstance(rid, str) or RUN_ID_RE.fullmatch(rid) is None:
        raise PathEscape(f"run id {rid!r} is not 12 hexadecimal digits")
    inside(sweep_folder, sweep_folder / rid)
    return sweep_folder / rid


# ---------------------------------------------------------------------------- reading


def read_json_file(path: Path) -> Any:
    """The parsed JSON at ``path``, or None when it is absent or unreadable."""
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_status(run_dir: str | Path) -> dict | None:
    """The run's status.json, or None when absent or unreadable."""
    status = read_json_file(Path(run_dir) / STATUS)
    return status if isinstance(status, dict) else None


def read_config_tree(run_dir: str | Path) -> dict | None:
    """The run's config.json as a mapping, or None when absent or unreadable."""
    tree = read_json_file(Path(run_dir) / CONFIG)
    return tree if isinstance(tree, dict) else None


# ---------------------------------------------------------------------------- feature spaces (units)

PROVENANCE_SUFFIX = "_provenance.json"  # <group>_provenance.json: what an evaluator's values depend on
# files written before provenance files listed their metric keys (the fid and prdc evaluators)
LEGACY_PROVENANCE_METRICS = {"fid": ("fid", "kid", "kid_std", "fid_n"),
                             "prdc": ("precision", "recall", "density", "coverage")}


@dataclass(frozen=True)
class FeatureSpace:
    """The unit of values measured in a feature network's space, from a provenance file."""

    label: str  # "<network>-<dims>", e.g. lenet-128, inception-2048
    weights_sha256: str  # identifies the network
    test_accuracy: float | None = None  # of a domain classifier

    def caption(self) -> str:
        acc = f", test accuracy {100 * self.test_accuracy:.2f}%" if self.test_accuracy is not None else ""
        return f"{self.label} (sha256 {self.weights_sha256[:12]}{acc})"


def feature_spaces(run_dir: str | Path) -> dict[str, tuple[tuple[str, ...], FeatureSpace]]:
    """``{group: (metric keys, feature space)}`` of a run folder: one entry per readable
    ``<group>_provenance.json`` that names a feature space (``features``, ``dims``,
    ``weights_sha256``); its metric keys are the file's ``metrics`` list."""
    out = {}
    folder = Path(run_dir)
    for path in sorted(folder.glob(f"*{PROVENANCE_SUFFIX}")) if folder.is_dir() else []:
        prov = read_json_file(path)
        group = path.name[: -len(PROVENANCE_SUFFIX)]
        try:
            space = FeatureSpace(f"{prov['features']}-{int(prov['dims'])}", str(prov["weights_sha256"]),
                                 prov.get("test_accuracy"))
        except (KeyError, TypeError, ValueError):
            continue
        metrics = prov.get("metrics", LEGACY_PROVENANCE_METRICS.get(group, ()))
        out[group] = (tuple(m for m in metrics if isinstance(m, str)), space)
    return out


def feature_space(run_dir: str | Path, metric: str) -> FeatureSpace | None:
    """The feature space ``metric`` was measured in, in this run folder (None: not one)."""
    return next((space for metrics, space in feature_spaces(run_dir).values() if metric in metrics), None)


@dataclass
class Metrics:
    """The readable rows of a metrics.jsonl and what was wrong with the rest."""

    rows: list[dict] = field(default_factory=list)
    torn_last: bool = False  # the last line was cut off (a write killed mid-line)
    bad_lines: list[int] = field(default_factory=list)  # line numbers of other unreadable lines
    missing_epochs: list[int] = field(default_factory=list)  # epochs absent between logged ones

    @property
    def problems(self) -> list[str]:
        out = []
        if self.torn_last:
            out.append("last line cut off")
        if self.bad_lines:
            out.append(f"unreadable line{'s' if len(self.bad_lines) > 1 else ''} "
                       f"{', '.join(map(str, self.bad_lines))}")
        if self.missing_epochs:
            n = len(self.missing_epochs)
            out.append(f"{n} epoch{'s' if n > 1 else ''} missing ({_ranges(self.missing_epochs)})")
        return out

    def intact_through(self, expects_epoch0: bool) -> int:
        """The last epoch up to which every line is readable: e with epochs 1..e all logged
        (and epoch 0 when ``expects_epoch0``, a run that evaluates at initialisation);
        -1 when even epoch 0 is missing. A run resumes from no checkpoint after it."""
        have = {r["epoch"] for r in self.rows}
        if expects_epoch0 and 0 not in have:
            return -1
        last = 0
        while last + 1 in have:
            last += 1
        return last


def _ranges(xs: list[int]) -> str:
    parts, start = [], None
    for i, x in enumerate(xs):
        if start is None:
            start = x
        if i + 1 == len(xs) or xs[i + 1] != x + 1:
            parts.append(str(start) if start == x else f"{start}-{x}")
            start = None
    return ", ".join(parts)


def read_metrics(path: str | Path) -> Metrics:
    """Every readable row of ``metrics.jsonl`` (rows need an integer ``epoch``).

    Never raises on content: a cut-off last line, unreadable lines in the middle and epochs
    missing before the last logged one are reported in the result (the trainer logs every
    epoch from 1 on, evaluated or not, so any gap is a lost line; epoch 0, the evaluation
    at initialisation, is optional). An absent file gives no rows.
    """
    out = Metrics()
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        return out
    lines = data.split(b"\n")
    last_index = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw.decode("utf-8"))
        except ValueError:
            row = None
        if not isinstance(row, dict) or isinstance(row.get("epoch"), bool) or not isinstance(row.get("epoch"), int):
            if i == last_index and not data.endswith(b"\n"):
                out.torn_last = True
            else:
                out.bad_lines.append(i + 1)
            continue
        out.rows.append(row)
    epochs = sorted({r["epoch"] for r in out.rows})
    if epochs:
        have = set(epochs)
        first = 0 if epochs[0] <= 0 else 1  # epoch 0 (evaluation at init) is optional
        out.missing_epochs = [e for e in range(first, epochs[-1] + 1) if e not in have]
    return out


# ---------------------------------------------------------------------------- same config?


def same_config(stored: Any, cfg: "RunConfig") -> bool:
    """Whether a stored config tree (config.json, a checkpoint's) describes the run ``cfg``.

    The stored tree is re-resolved first, so defaults added to the harness since the run
    started do not make the same run look different; execution-only fields
    (:data:`harness.config.EXECUTION_ONLY`) do not count. An unreadable or invalid stored
    tree is not the same config.
    """
    from harness.config import config_from_dict, same_run
    from harness.errors import ConfigError

    if not isinstance(stored, dict):
        return False
    try:
        resolved = config_from_dict(stored).to_dict()
    except ConfigError:
        return False
    return same_run(resolved, cfg.to_dict())


# ---------------------------------------------------------------------------- liveness


def _epoch(iso: Any) -> float | None:
    try:
        return datetime.fromisoformat(str(iso)).timestamp()
    except ValueError:
        return None


def _process_start(pid: int) -> tuple[str, float] | None:
    """(state letter, start time as a Unix time) of ``pid`` from /proc, or None if absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration, ValueError):
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) "
    return fields[0], boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def pid_alive(pid: Any, written_at: str | None = None) -> bool:
    """Whether ``pid`` on this machine is a live process that could have written the status
    (a live, non-zombie process that started no later than ``written_at``: a recycled pid
    is not mistaken for the run)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if Path("/proc/self/stat").exists():
        info = _process_start(pid)
        if info is None or info[0] in ("Z", "X"):
            return False
        written = _epoch(written_at)
        return written is None or info[1] <= written + PID_SLACK_S
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def local_writer_alive(status: dict) -> bool | None:
    """True / False when the status was written on this machine (checked through /proc),
    None when it came from another machine."""
    import socket

    if status.get("host") == socket.gethostname() and "pid" in status:
        return pid_alive(status["pid"], status.get("updated_at"))
    return None


def waits_for_data(status: dict | None) -> bool:
    """Did the run fail only because its data was missing or damaged (:data:`DATA_FAILURE`)?"""
    return bool(status) and status.get("state") == FAILED and status.get("failure") == DATA_FAILURE


def disk_state(status: dict | None) -> str:
    """The state of a run from its status.json alone (no scheduler is asked).

    ``pending`` without a status, or after a failure for missing data (:func:`waits_for_data`); ``done`` / ``diverged`` / ``failed`` / ``interrupted`` as
    written; ``running`` unless the status was written on this machine by a process that is
    gone, which makes it ``interrupted`` (a ``running`` status from another machine is
    taken at its word).
    """
    state = status.get("state") if status else None
    if state == FAILED and waits_for_data(status):
        return PENDING
    if state in (DONE, DIVERGED, FAILED, INTERRUPTED):
        return state
    if state == RUNNING:
        return INTERRUPTED if local_writer_alive(status) is False else RUNNING
    return PENDING


# ---------------------------------------------------------------------------- lock


@contextmanager
def run_lock(run_dir: str | Path) -> Iterator[bool]:
    """Hold an exclusive lock on a run folder while training it; yields False when another
    process holds it (the same run launched twice), so the second launch does nothing.
    The kernel drops the lock when the holder dies, however it dies."""
    with folder_lock(run_dir) as (_, held):
        yield held


@contextmanager
def folder_lock(folder: str | Path) -> Iterator[tuple[int, bool]]:
    """``folder``'s lock file (``.lock``), open: (its descriptor, whether this process now
    holds it exclusively); the sweep folder's lock keeps its holder's definition in it."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield fd, False
            return
        yield fd, True
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------- the folder


class NotARunFolder(ValueError):
    """A path that exists but is not (and cannot become) a run folder; one line."""


def check_run_path(path: str | Path) -> None:
    """Refuse a path that cannot hold a run: a file, or a folder with other files in it
    and no config.json (someone's own folder: training would overwrite its files)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotARunFolder(f"{path} is a file, not a run folder; choose a folder path")
    if not path.is_dir() or (path / CONFIG).exists():
        return
    foreign = sorted(p.name for p in path.iterdir()
                     if p.name not in PRE_CONFIG_FILES and not is_temp_file(p.name))
    if foreign:
        shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
        raise NotARunFolder(f"{path} is not a run folder (it holds {shown} and no {CONFIG}); "
                            "choose a new or empty folder")


def is_temp_file(name: str) -> bool:
    """A temporary file of :func:`harness.atomic.atomic_write` (``.<name>.<random>.tmp``)."""
    return name.startswith(".") and name.endswith(".tmp")


def clean_temp_files(folder: str | Path) -> list[str]:
    """Remove the temporary files that writes killed mid-way left in ``folder``; call it only
    while holding the run lock (no live writer of this folder). Returns the names removed."""
    removed = []
    try:
        entries = list(Path(folder).iterdir())
    except OSError:
        return removed
    for p in entries:
        if is_temp_file(p.name) and p.is_file():
            try:
                p.unlink()
                removed.append(p.name)
            except OSError:
                pass
    return removed


class RunFolder:
    """The files of one run; every write is atomic."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def status(self) -> dict | None:
        return read_status(self.path)

    def config_tree(self) -> dict | None:
        return read_config_tree(self.path)

    def write_config(self, cfg: "RunConfig") -> None:
        write_json(self.file(CONFIG), cfg.to_dict())

    def update_status(self, **fields) -> dict:
        status = read_status(self.path) or {}
        status.update(fields)
        status["updated_at"] = now()
        write_json(self.file(STATUS), status)
        return status

    def metrics(self) -> Metrics:
        return read_metrics(self.file(METRICS))

    def write_metrics(self, rows: list[dict]) -> None:
        write_text(self.file(METRICS), "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows))

    def append_metrics(self, row: dict) -> None:
        """Append one row (the file is rewritten through a rename: a kill never tears it)."""
        self.write_metrics([*self.metrics().rows, row])

    def save_checkpoint(self, state: dict) -> None:
        save_checkpoint(self.file(CHECKPOINT), state)

    def latest_checkpoint(self, max_epoch: int | None = None) -> Resumed:
        """The newest readable checkpoint whose epoch is at most ``max_epoch``:
        ``checkpoint.pt``, else ``checkpoint.prev.pt``, else none (a fresh start).

        An unreadable checkpoint (cut off, corrupt) is removed, and a readable previous one
        takes its name, so the next save does not rotate the broken file over it; one that
        is ahead of ``max_epoch`` is kept (it is rotated away by the next save). The
        notice says in one line what was used instead.
        """
        newest = self.file(CHECKPOINT)
        skipped: list[str] = []
        broken: list[Path] = []
        for path in (newest, previous_checkpoint(newest)):
            if not path.exists():
                continue
            try:
                state = load_checkpoint(path)
            except Exception as e:  # noqa: BLE001 - whatever the damage, fall back
                why = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"
                skipped.append(f"{path}: unreadable ({why[:120]})")
                broken.append(path)
                continue
            if max_epoch is not None and int(state["epoch"]) > max_epoch:
                skipped.append(f"{path}: epoch {state['epoch']} is ahead of the last intact metrics line "
                               f"(epoch {max_epoch})")
                continue
            for bad in broken:
                bad.unlink(missing_ok=True)
            if path != newest and newest in broken:
                os.replace(path, newest)
                path = newest
            notice = (f"{skipped[0]}; resumed from {path.name if newest not in broken else PREVIOUS_CHECKPOINT} "
                      f"(epoch {state['epoch']})") if skipped else None
            return Resumed(state, path.name, notice)
        for bad in broken:
            bad.unlink(missing_ok=True)
        if not skipped:
            return Resumed()
        none = ("no earlier checkpoint can be read" if len(broken) == len(skipped)
                else f"no checkpoint of epoch {max_epoch} or earlier is kept")
        return Resumed(notice=f"{skipped[0]} and {none}; the run restarts from epoch 0")

    def resume_point(self, expects_epoch0: bool) -> tuple[Resumed, list[str]]:
        """Where the run resumes, and the notices of what was recovered.

        The resume point is never ahead of the last intact metrics line: a line cut off or
        lost rolls back to the checkpoint of that epoch (``checkpoint.prev.pt``) or, when
        none is kept, restarts the run, so the lost epoch is trained again. The metrics
        file is cut to the resume point (removed for a fresh start).
        """
        read = self.metrics()
        resumed = self.latest_checkpoint(max_epoch=read.intact_through(expects_epoch0))
        notices = [resumed.notice] if resumed.notice else []
        if read.problems:
            notices.append(f"{self.file(METRICS)}: {'; '.join(read.problems)}"
                           + ("; unreadable lines dropped" if read.torn_last or read.bad_lines else ""))
        if resumed.state is None:
            self.file(METRICS).unlink(missing_ok=True)
        else:
            self.write_metrics([r for r in read.rows if r["epoch"] <= resumed.epoch])
        return resumed, notices

    def record_final(self) -> dict:
        """Size and SHA-256 of the final checkpoint and metrics (kept in status.json ``files``)."""
        return {name: file_digest(self.file(name)) for name in FINAL_FILES}

    def final_damage(self, status: dict) -> str | None:
        """One line naming the files of a finished run that differ from what was recorded
        at its finish, or None when they match (or nothing was recorded: an older run)."""
        recorded = status.get("files")
        if not isinstance(recorded, dict):
            return None
        changed = [name for name in FINAL_FILES
                   if name in recorded and file_digest(self.file(name)) != recorded[name]]
        if not changed:
            return None
        return (f"{self.path}: {' and '.join(changed)} changed since the run finished (size or SHA-256); "
                "resuming from what is intact")


# ---------------------------------------------------------------------------- checkpoints


def _os_error_in(e: BaseException) -> OSError | None:
    """The OSError behind an exception (torch.save reports a full disk as ``unexpected pos``)."""
    seen = e
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def save_checkpoint(path: str | Path, state: dict) -> None:
    """Write a training state atomically; the file it replaces is kept as ``*.prev.pt`` (the
    fallback when the newest cannot be read, and the rollback target when the newest is
    ahead of the metrics). A full disk raises its ``OSError``."""
    import torch

    path = Path(path)
    try:
        atomic_write(path, lambda f: torch.save(state, f), mode="wb", previous=previous_checkpoint(path))
    except RuntimeError as e:
        cause = _os_error_in(e)
        if cause is None:
            raise
        raise OSError(cause.errno, cause.strerror, str(path)) from None


def load_checkpoint(path: str | Path) -> dict:
    """A training state (tensors on the CPU); raises when the file is not a readable checkpoint."""
    import torch

    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict) or "model" not in state or "epoch" not in state:
        raise ValueError("not a checkpoint of this harness")
    return state


def previous_checkpoint(path: str | Path) -> Path:
    """``checkpoint.pt`` -> ``checkpoint.prev.pt``."""
    path = Path(path)
    return path.with_name(path.stem + ".prev" + path.suffix)


def checkpoint_config(path: str | Path) -> dict | None:
    """The config tree stored in a checkpoint, or None when it cannot be read."""
    try:
        return load_checkpoint(path).get("config")
    except Exception:  # noqa: BLE001 - any unreadable file is "no config"
        return None


def file_digest(path: str | Path) -> dict | None:
    """``{"size", "sha256"}`` of a file, or None when it cannot be read."""
    try:
        return {"size": Path(path).stat().st_size, "sha256": hash_file(path)}
    except OSError:
        return None


@dataclass
class Resumed:
    """Where a run resumes: the training state (None: from scratch), the file it came from,
    and one line saying what had to be recovered (None when nothing was wrong)."""

    state: dict | None = None
    name: str | None = None
    notice: str | None = None

    @property
    def epoch(self) -> int:
        return int(self.state["epoch"]) if self.state is not None else 0


FINAL_FILES = (CHECKPOINT, METRICS)  # what a finished run records the size and hash of


def describe_os_error(e: OSError, path: str | Path | None = None) -> str:
    """One line for an environment error: which path, and what is wrong in plain words."""
    where = path or e.filename or ""
    words = {
        errno.ENOSPC: "no space left on device",
        errno.EDQUOT: "disk quota exceeded",
        errno.EROFS: "read-only file system",
        errno.EACCES: "permission denied",
        errno.EPERM: "permission denied",
        errno.ENOTDIR: "a path component is a file, not a folder",
        errno.EEXIST: "exists and is not a folder",
        errno.EISDIR: "is a folder",
    }.get(e.errno, e.strerror or type(e).__name__)
    return f"{where}: {words}" if where else words
