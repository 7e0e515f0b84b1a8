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

import argparse
import os
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from harness import distributed
from harness.atomic import write_text
from harness.config import ConfigError, RunConfig, check_machine, config_from_dict, load_config, run_id
from harness.datasets import DatasetMissing
from harness.provenance import code_version, package_versions, process_info
from harness.run_folder import (
    CHECKPOINT, CONFIG, DATA_FAILURE, ERROR, FINAL, METRICS, RUNNING, STATUS, NotARunFolder, RunFolder, check_run_path,
    clean_temp_files, describe_os_error, now, read_config_tree, read_metrics, read_status, run_lock, same_config,
)
from harness.tracking import build_trackers
from harness.trainer import Diverged, Trainer, read_checkpoint_config

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
            elif ckpt.exists() and same_config(read_checkpoint_config(ckpt), cfg):
                why = "checkpoint.pt holds this run's config"
            elif not trained:
                why = "nothing was trained in this folder yet"
            if why is None:
                raise ConfigError("", f"{path}: unreadable, and nothing in {folder.path} shows it held this run; "
                                      "move that folder away or use another --out")
            notices.append(f"{path}: unreadable; rewritten ({why})")
    folder.write_config(cfg)


def train_run(cfg: RunConfig, run_dir: str | Path, quiet_errors: bool = False, notify=_notify,
              take_lock: bool = True) -> str:
    """Start or resume the run of ``cfg`` in ``run_dir``; return its final state.

    The state is ``done``, ``diverged`` (non-finite loss: step and reason in status.json)
    or ``failed`` (an exception: its message in status.json, the traceback in error.txt).
    A run already ``done`` or ``diverged`` returns at once; ``running`` is returned, with
    nothing done, when another process holds the folder's lock (it is training this run).
    In a multi-process run, only rank 0 writes (and holds the lock); the other ranks train in
    step with it (:func:`_train_follower`).

    Raises :class:`~harness.run_folder.NotARunFolder` for a path that is a file or a folder
    of other files, :class:`ConfigError` for a folder that holds another run, and
    ``OSError`` when the folder cannot be written at all. Broken files are recovered, each
    with a one-line notice (``notify``, also kept in status.json ``notices``): temporary
    files of killed writes are removed, an unreadable status.json is rebuilt, an unreadable
    checkpoint falls back to the previous one (or the run restarts), metric lines that are
    cut off or unreadable are dropped.
    """
    dist = distributed.current()
    if not dist.is_main:
        return _train_follower(cfg, Path(run_dir))
    folder = RunFolder(run_dir)
    check_run_path(folder.path)
    folder.path.mkdir(parents=True, exist_ok=True)
    if not take_lock:  # the caller holds the folder's lock (a multi-process run's rank 0)
        return _train_locked(cfg, folder, quiet_errors, notify)
    with run_lock(folder.path) as held:
        if not held:
            notify(f"{folder.path}: another process is training this run; nothing done")
            return RUNNING
        return _train_locked(cfg, folder, quiet_errors, notify)


def _train_locked(cfg: RunConfig, folder: RunFolder, quiet_errors: bool, notify) -> str:
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
        for line in notices:
            notify(line)
        return previous["state"]
    start = time.time()
    wall_before = float(previous.get("wall_time_s", 0.0) or 0.0)
    folder.update_status(
        state="running", started_at=previous.get("started_at", now()), resumed_at=now() if previous else None,
        finished_at=None, reason=None, warnings=None, seed=cfg.seed, world_size=distributed.current().world_size,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), code_version=code_version(),
        packages=package_versions(), notices=None, **process_info(),
    )
    trainer, trackers, last = None, [], {}
    try:
        trainer = Trainer(cfg, folder.path)
        ckpt = folder.file(CHECKPOINT)
        if trainer.resume(ckpt) is None:  # a fresh start: no metrics of an earlier attempt survive
            folder.file(METRICS).unlink(missing_ok=True)
        if trainer.notice:
            notices.append(trainer.notice)
        read = folder.truncate_metrics(trainer.epoch)
        if read.problems:
            notices.append(f"{folder.file(METRICS)}: {'; '.join(read.problems)}"
                           + ("; unreadable lines dropped" if read.torn_last or read.bad_lines else ""))
        for line in notices:
            notify(line)
        if notices:
            folder.update_status(notices=notices)

        trackers = build_trackers(cfg, folder.path, trainer.epoch)
        say = epoch_lines(cfg)

        def on_epoch(row: dict) -> None:
            folder.append_metrics(row)
            last.update(row)
            for t in trackers:
                t.log_epoch(row)
                if trainer.images:
                    t.log_images(trainer.images, row["epoch"])
            trainer.images = {}
            if say:
                print(epoch_line(row, cfg.train.epochs), file=sys.stderr, flush=True)

        def on_checkpoint() -> None:
            trainer.save_checkpoint(ckpt)
            folder.update_status(epoch=trainer.epoch, step=trainer.step,
                                 wall_time_s=wall_before + time.time() - start)

        trainer.fit(on_epoch, on_checkpoint)
        state, extra = "done", {"warnings": run_warnings(trainer, folder.file(METRICS))}
    except Diverged as e:
        state, extra = "diverged", {"reason": e.reason, "diverged_step": e.step}
    except DatasetMissing as e:  # not a result of the run: the sweep starts it again once the data is there
        state, extra = "failed", {"reason": str(e), "failure": DATA_FAILURE}
    except ConfigError as e:
        state, extra = "failed", {"reason": str(e)}
    except OSError as e:  # the environment (disk full, read-only, permissions): one line, no traceback
        state, extra = "failed", {"reason": describe_os_error(e)}
    except Exception as e:  # a crash ends this run only; the message is kept on disk
        write_text(folder.file(ERROR), traceback.format_exc())
        if not quiet_errors:
            traceback.print_exc()
        state, extra = "failed", {"reason": f"{type(e).__name__}: {e}"}
    for t in trackers:
        try:
            t.close(state, last)
        except Exception as e:  # a tracker never changes the run's outcome
            print(f"warning: {type(t).__name__}: {type(e).__name__}: {e}", file=sys.stderr)
    progress = {"epoch": trainer.epoch, "step": trainer.step} if trainer is not None else {}
    folder.update_status(state=state, finished_at=now(), wall_time_s=wall_before + time.time() - start,
                         **progress, **extra)
    return state


def _train_follower(cfg: RunConfig, run_dir: Path) -> str:
    """Rank > 0 of a multi-process run: resume from the same checkpoint as rank 0 and train
    in step with it (every collective matches), writing nothing."""
    previous = read_status(run_dir) or {}
    if previous.get("state") in FINAL:
        return previous["state"]
    trainer = Trainer(cfg, run_dir)  # its DDP wrapper waits for rank 0, which wrote the folder by now
    ckpt = run_dir / CHECKPOINT
    if ckpt.exists():
        trainer.load_checkpoint(ckpt)
    try:
        trainer.fit(lambda row: None)
    except Diverged:
        return "diverged"
    return "done"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.train", description=__doc__.split("\n\n")[0])
    parser.add_argument("config", help="run config YAML")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key (repeatable), e.g. --set method.tau=0.2")
    parser.add_argument("--out", default=None, help="run folder (default: results/runs/<run id>)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
        check_machine(cfg)  # before the run folder is touched
    except ConfigError as e:
        print(f"error: {e if e.source else e.with_source(args.config)}", file=sys.stderr)
        return 2
    out = Path(args.out) if args.out else Path("results") / "runs" / run_id(cfg)
    dist = distributed.init_from_env(cfg.train.device)  # torchrun / srun: join the run's processes
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
        distributed.shutdown()
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
