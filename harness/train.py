"""Train one run into one run folder.

    python -m harness.train CONFIG.yaml [--set key=value ...] [--out DIR]

writes ``DIR/config.json`` (the resolved config), ``status.json`` (running / done /
diverged / failed, timestamps, code and package versions), ``metrics.jsonl`` (one line per
epoch) and ``checkpoint.pt`` (every epoch), all atomically. Running the same command again
resumes from the checkpoint, or does nothing when the run is done. A bad config exits with
status 2 and one line naming the key, before anything is written.

One run on several processes (DDP, :mod:`harness.distributed`): launch the same command
with ``torchrun --nproc_per_node N -m harness.train ...`` (or under ``srun``); rank 0 writes
the folder, every rank resumes from its checkpoint.

Two processes on the same folder cannot both train it: the second finds the folder's lock
held and exits with status 4, doing nothing. ``--out`` must be a new or empty folder or a
run folder: a file, or a folder of other files, is refused (exit 2). Broken files are
recovered with a one-line notice each (see :func:`train_run`); environment errors (disk
full, read-only, permissions) are one line, exit 1.

Python API: :func:`train_run` (used by the sweep executors) and :func:`read_status`.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

import torch

from harness.errors import CommandLine
from harness import distributed
from harness.atomic import write_text
from harness.config import ConfigError, RunConfig, config_from_dict, load_config, run_id
from harness.datasets import DatasetMissing
from harness.provenance import code_version, machine_info, package_versions, process_info
from harness.run_folder import (
    CHECKPOINT, CONFIG, DATA_FAILURE, DIVERGED, DONE, ERROR, FAILED, FINAL, METRICS, RUNNING, STATUS, NotARunFolder,
    RunFolder, check_run_path, checkpoint_config, clean_temp_files, describe_os_error, load_checkpoint, now,
    read_config_tree, read_metrics, read_status, run_lock, same_config,
)
from harness.build import check_batch_split, check_machine
from harness.tracking import build_trackers
from harness.trainer import Diverged, Trainer

__all__ = ["train_run", "read_status", "read_run_config", "main"]


def read_run_config(run_dir: str | Path) -> RunConfig:
    tree = read_config_tree(run_dir)
    if tree is None:
        raise ConfigError("", f"{Path(run_dir) / CONFIG}: missing or not a readable JSON object")
    return config_from_dict(tree)


def _notify(line: str) -> None:
    print(line, file=sys.stderr)


def epoch_lines(cfg: RunConfig) -> bool:
    """One status line per epoch on stderr when no progress bar is shown there: with
    ``train.progress: auto`` off a terminal (a log file, a batch job)."""
    return cfg.train.progress == "auto" and not sys.stderr.isatty()


def epoch_line(row: dict, epochs: int) -> str:
    """``epoch 3/8: loss=12.3 recon=11.9 reg=0.04 image_swd=812 (4.1 s)``."""
    skip = {"epoch", "step", "lr", "epoch_time_s", "eval_time_s"}
    values = " ".join(f"{k}={v:.4g}" for k, v in row.items()
                      if k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool))
    took = f" ({row['epoch_time_s']:.1f} s)" if isinstance(row.get("epoch_time_s"), (int, float)) else ""
    return f"epoch {row['epoch']}/{epochs}: {values}{took}"


def run_warnings(trainer: Trainer, metrics: Path) -> list[str]:
    """The warnings of a finished run (:mod:`harness.health`): latent collapse and the
    regularizer's from the trainer, a flat loss from the whole metrics.jsonl (a resumed run's
    trainer saw only its last epochs). A check that fails is itself reported, never fatal."""
    from harness.health import flat_loss

    try:
        found = trainer.health_warnings()
    except Exception as e:  # noqa: BLE001 - a diagnostic must not fail a finished run
        found = [f"health check failed: {type(e).__name__}: {e}"]
    losses = [r.get("loss") for r in read_metrics(metrics).rows if r["epoch"] >= 1]
    flat = flat_loss(losses)
    return found + ([flat] if flat else [])


def _claim_config(folder: RunFolder, cfg: RunConfig, notices: list[str]) -> None:
    """Write config.json, refusing a folder that holds another run.

    An unreadable config.json (cut off, hand-edited) is rewritten when the folder shows it
    held this run: its name is the run's id, its checkpoint holds this config, or nothing
    was trained in it yet; otherwise the folder is refused.
    """
    path = folder.file(CONFIG)
    if path.exists():
        stored = read_config_tree(folder.path)
        if stored is not None:
            if not same_config(stored, cfg):
                raise ConfigError("", f"{folder.path} holds a run with a different config; use another --out")
        else:
            ckpt = folder.file(CHECKPOINT)
            trained = ckpt.exists() or bool(folder.metrics().rows)
            why = None
            if folder.path.name == run_id(cfg):
                why = "the folder is named after this run's id"
            elif ckpt.exists() and same_config(checkpoint_config(ckpt), cfg):
                why = "checkpoint.pt holds this run's config"
            elif not trained:
                why = "nothing was trained in this folder yet"
            if why is None:
                raise ConfigError("", f"{path}: unreadable, and nothing in {folder.path} shows it held this run; "
                                      "move that folder away or use another --out")
            notices.append(f"{path}: unreadable; rewritten ({why})")
    folder.write_config(cfg)


class _Plan:
    """What rank 0 tells the other ranks of a multi-process run before any of them builds
    anything, so that all resume from the same file or all stop (one broadcast; nothing in
    a single-process run). Leaving the ``with`` block untold tells them ``failed``."""

    def __init__(self, dist: distributed.Dist):
        self.dist, self.told = dist, False

    def tell(self, stop: str | None = None, checkpoint: str | None = None) -> None:
        if not self.told:
            self.told = True
            self.dist.broadcast_object({"stop": stop, "checkpoint": checkpoint})

    def __enter__(self) -> "_Plan":
        return self

    def __exit__(self, *exc) -> None:
        self.tell(stop=FAILED)


def train_run(cfg: RunConfig, run_dir: str | Path, quiet_errors: bool = False, notify=_notify,
              take_lock: bool = True) -> str:
    """Start or resume the run of ``cfg`` in ``run_dir``; return its final state.

    The state is ``done``, ``diverged`` (non-finite loss: step and reason in status.json)
    or ``failed`` (an exception: its type and message in status.json, the traceback in
    error.txt). A run already ``done`` (its checkpoint and metrics as recorded at its
    finish) or ``diverged`` returns at once; ``running`` is returned, with nothing done,
    when another process holds the folder's lock (it is training this run). In a
    multi-process run, only rank 0 writes (and holds the lock) and tells the other ranks
    where to resume (:class:`_Plan`); they train in step with it (:func:`_train_follower`).

    Raises :class:`~harness.run_folder.NotARunFolder` for a path that is a file or a folder
    of other files, :class:`ConfigError` for a folder that holds another run, and
    ``OSError`` when the folder cannot be written at all. Broken files are recovered, each
    with a one-line notice (``notify``, also kept in status.json ``notices``): temporary
    files of killed writes are removed, an unreadable status.json is rebuilt, the run
    resumes from the newest readable checkpoint not ahead of the last intact metrics line
    (:meth:`RunFolder.resume_point`), a finished run whose files changed resumes from what
    is intact.
    """
    dist = distributed.current()
    if not dist.is_main:
        return _train_follower(cfg, Path(run_dir), dist)
    with _Plan(dist) as plan:
        folder = RunFolder(run_dir)
        check_run_path(folder.path)
        folder.path.mkdir(parents=True, exist_ok=True)
        if not take_lock:  # the caller holds the folder's lock (a multi-process run's rank 0)
            return _train_locked(cfg, folder, quiet_errors, notify, plan)
        with run_lock(folder.path) as held:
            if not held:
                notify(f"{folder.path}: another process is training this run; nothing done")
                plan.tell(stop=RUNNING)
                return RUNNING
            return _train_locked(cfg, folder, quiet_errors, notify, plan)


def _train_locked(cfg: RunConfig, folder: RunFolder, quiet_errors: bool, notify, plan: _Plan) -> str:
    notices: list[str] = []
    removed = clean_temp_files(folder.path)
    if removed:
        notices.append(f"{folder.path}: removed {len(removed)} temporary file(s) of interrupted writes")
    _claim_config(folder, cfg, notices)
    previous = read_status(folder.path)
    if previous is None and folder.file(STATUS).exists():
        notices.append(f"{folder.file(STATUS)}: unreadable; rebuilt (the run resumes from its checkpoint)")
    previous = previous or {}
    if previous.get("state") in FINAL:
        damage = folder.final_damage(previous) if previous["state"] == DONE else None
        if damage is None:
            for line in notices:
                notify(line)
            plan.tell(stop=previous["state"])
            return previous["state"]
        notices.append(damage)
    return _train(cfg, folder, previous, notices, quiet_errors, notify, plan)


def _train(cfg: RunConfig, folder: RunFolder, previous: dict, notices: list[str], quiet_errors: bool,
           notify, plan: _Plan) -> str:
    """Resume (or start) and train the run; record its outcome in status.json."""
    start, wall_before = time.time(), float(previous.get("wall_time_s", 0.0) or 0.0)
    folder.update_status(
        state="running", started_at=previous.get("started_at", now()), resumed_at=now() if previous else None,
        finished_at=None, reason=None, warnings=None, files=None, seed=cfg.seed,
        world_size=distributed.current().world_size, cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
        code_version=code_version(), packages=package_versions(), machine=machine_info(), notices=None,
        **process_info(),
    )
    trainer, trackers, last = None, [], {}
    try:
        resumed, recovered = folder.resume_point(expects_epoch0=bool(cfg.eval.metrics) and cfg.eval.every > 0)
        notices += recovered
        for line in notices:
            notify(line)
        if notices:
            folder.update_status(notices=notices)
        plan.tell(checkpoint=resumed.name)
        trainer = Trainer(cfg, folder.path)
        if trainer.device.type == "cuda":  # the GPU model decides the low bits as the CPU's does
            folder.update_status(machine={**machine_info(), "gpu": torch.cuda.get_device_name(trainer.device)})
        if resumed.state is not None:
            trainer.load_state_dict(resumed.state)
        trackers = build_trackers(cfg, folder.path, trainer.epoch)
        for row in trainer.epochs():
            _record_epoch(folder, trainer, row, trackers, last)
            if row["epoch"] >= 1:
                folder.save_checkpoint(trainer.state_dict())
                folder.update_status(epoch=trainer.epoch, step=trainer.step,
                                     wall_time_s=wall_before + time.time() - start)
        state, extra = DONE, {"warnings": run_warnings(trainer, folder.file(METRICS)), "files": folder.record_final()}
    except Diverged as e:
        state, extra = DIVERGED, {"reason": e.reason, "diverged_step": e.step}
    except Exception as e:  # a crash ends this run only; type and message are kept on disk
        state, extra = FAILED, {"reason": failure_reason(e)}
        if isinstance(e, DatasetMissing):  # not a result of the run: the sweep starts it again once the data is there
            extra["failure"] = DATA_FAILURE
        if not isinstance(e, (DatasetMissing, ConfigError, OSError)):  # a bug: its traceback too
            write_text(folder.file(ERROR), traceback.format_exc())
            if not quiet_errors:
                traceback.print_exc()
    _close_trackers(trackers, state, last)
    progress = {"epoch": trainer.epoch, "step": trainer.step} if trainer is not None else {}
    folder.update_status(state=state, finished_at=now(), wall_time_s=wall_before + time.time() - start,
                         **progress, **extra)
    return state


def failure_reason(e: BaseException) -> str:
    """``<type>: <message>`` of the exception that ended a run (an environment error in plain
    words, e.g. ``OSError: /results/x: no space left on device``)."""
    message = describe_os_error(e) if isinstance(e, OSError) and e.errno is not None else str(e)
    return f"{type(e).__name__}: {message}" if message else type(e).__name__


def _record_epoch(folder: RunFolder, trainer: Trainer, row: dict, trackers: list, last: dict) -> None:
    """The epoch's metrics line, trackers and (off a terminal) its status line."""
    folder.append_metrics(row)
    last.update(row)
    for t in trackers:
        t.log_epoch(row)
        if trainer.images:
            t.log_images(trainer.images, row["epoch"])
    trainer.images = {}
    if epoch_lines(trainer.cfg):
        print(epoch_line(row, trainer.cfg.train.epochs), file=sys.stderr, flush=True)


def _close_trackers(trackers: list, state: str, last: dict) -> None:
    for t in trackers:
        try:
            t.close(state, last)
        except Exception as e:  # a tracker never changes the run's outcome
            print(f"warning: {type(t).__name__}: {type(e).__name__}: {e}", file=sys.stderr)


def _train_follower(cfg: RunConfig, run_dir: Path, dist: distributed.Dist) -> str:
    """Rank > 0 of a multi-process run: resume from the checkpoint rank 0 chose (or stop when
    it says so) and train in step with it (every collective matches), writing nothing."""
    plan = dist.broadcast_object(None)
    if plan["stop"]:
        return plan["stop"]
    state = load_checkpoint(run_dir / plan["checkpoint"]) if plan["checkpoint"] else None
    trainer = Trainer(cfg, run_dir)  # rank 0 writes no checkpoint before this DDP wrapper syncs
    if state is not None:
        trainer.load_state_dict(state)
    try:
        for _ in trainer.epochs():
            pass
    except Diverged:
        return DIVERGED
    return DONE


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(prog="python -m harness.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="run config YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (repeatable), e.g. --set method.tau=0.2")
    parser.add_argument("--out", default=None, help="run folder (default: results/runs/<run id>)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        check_machine(cfg)  # before the run folder is touched
        check_batch_split(cfg.train.batch_size, distributed.world_size_from_env())  # before the processes join
    except ConfigError as e:
        print(f"error: {e if e.source else e.with_source(args.config)}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("results") / "runs" / run_id(cfg)
    dist = distributed.init_from_env(cfg.train.device)  # torchrun / srun: join the run's processes
    state = None
    try:
        state = train_run(cfg, out)
    except (ConfigError, NotARunFolder) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"interrupted: {out} resumes from its last checkpoint when the same command runs again",
              file=sys.stderr)
        return 130
    finally:
        distributed.shutdown(together=state not in (None, FAILED))
    if not dist.is_main:
        return {"done": 0, "diverged": 3}.get(state, 1)
    status = read_status(out) or {}
    line = f"{state}: {out}"
    if state == RUNNING:
        line += " (another process is training this run)"
    elif status.get("reason"):
        line += f" ({status['reason']})"
    print(line)
    for warning in status.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    return {"done": 0, "diverged": 3, RUNNING: 4}.get(state, 1)


if __name__ == "__main__":
    sys.exit(main())
