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
from harness.atomic import append_jsonl, read_json, read_jsonl, write_json, write_jsonl, write_text
from harness.config import ConfigError, RunConfig, config_from_dict, load_config, same_run
from harness.datasets import DatasetMissing
from harness.provenance import code_version, package_versions, process_info
from harness.tracking import build_trackers
from harness.trainer import Diverged, Trainer

CONFIG, STATUS, METRICS, CHECKPOINT, ERROR = "config.json", "status.json", "metrics.jsonl", "checkpoint.pt", "error.txt"
FINAL_STATES = ("done", "diverged")


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def read_status(run_dir: str | Path) -> dict | None:
    """The run's status.json, or None when absent or unreadable."""
    try:
        status = read_json(Path(run_dir) / STATUS)
    except (OSError, ValueError):
        return None
    return status if isinstance(status, dict) else None


def read_run_config(run_dir: str | Path) -> RunConfig:
    return config_from_dict(read_json(Path(run_dir) / CONFIG))


class RunFolder:
    """The files of one run; every write is atomic."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def file(self, name: str) -> Path:
        return self.path / name

    def write_config(self, cfg: RunConfig) -> None:
        """Write config.json; refuse a folder that holds another run.

        The stored config is re-resolved first, so defaults added to the harness since the
        run started do not make the same run look different.
        """
        existing = self.file(CONFIG)
        if existing.exists():
            try:
                same = same_run(config_from_dict(read_json(existing)).to_dict(), cfg.to_dict())
            except (ConfigError, OSError, ValueError):
                same = False
            if not same:
                raise ConfigError("", f"{self.path} holds a run with a different config; use another --out")
        write_json(existing, cfg.to_dict())

    def update_status(self, **fields) -> dict:
        status = read_status(self.path) or {}
        status.update(fields)
        status["updated_at"] = _now()
        write_json(self.file(STATUS), status)
        return status

    def truncate_metrics(self, last_epoch: int) -> None:
        """Drop metric lines written after the checkpoint we resume from."""
        path = self.file(METRICS)
        if path.exists():
            write_jsonl(path, [r for r in read_jsonl(path) if r.get("epoch", 0) <= last_epoch])
        elif last_epoch > 0:
            write_jsonl(path, [])


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
    losses = [r.get("loss") for r in read_jsonl(metrics) if r.get("epoch", 0) >= 1] if metrics.exists() else []
    flat = flat_loss(losses)
    return found + ([flat] if flat else [])


def train_run(cfg: RunConfig, run_dir: str | Path, quiet_errors: bool = False) -> str:
    """Start or resume the run of ``cfg`` in ``run_dir``; return its final state.

    The state is ``done``, ``diverged`` (non-finite loss: step and reason in status.json)
    or ``failed`` (an exception: its message in status.json, the traceback in error.txt).
    A run already ``done`` or ``diverged`` returns at once. In a multi-process run, only
    rank 0 writes; the other ranks train in step with it (:func:`_train_follower`).
    """
    dist = distributed.current()
    if not dist.is_main:
        return _train_follower(cfg, Path(run_dir))
    folder = RunFolder(run_dir)
    folder.path.mkdir(parents=True, exist_ok=True)
    folder.write_config(cfg)
    previous = read_status(folder.path) or {}
    if previous.get("state") in FINAL_STATES:
        return previous["state"]
    start = time.time()
    wall_before = float(previous.get("wall_time_s", 0.0))
    folder.update_status(
        state="running", started_at=previous.get("started_at", _now()), resumed_at=_now() if previous else None,
        finished_at=None, reason=None, warnings=None, seed=cfg.seed, world_size=dist.world_size,
        cuda_visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"), code_version=code_version(),
        packages=package_versions(), **process_info(),
    )
    trainer, trackers, last = None, [], {}
    try:
        trainer = Trainer(cfg, folder.path)
        ckpt = folder.file(CHECKPOINT)
        if ckpt.exists():
            trainer.load_checkpoint(ckpt)
        else:
            folder.file(METRICS).unlink(missing_ok=True)
        folder.truncate_metrics(trainer.epoch)

        trackers = build_trackers(cfg, folder.path, trainer.epoch)
        say = epoch_lines(cfg)

        def on_epoch(row: dict) -> None:
            append_jsonl(folder.file(METRICS), row)
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
    except (DatasetMissing, ConfigError) as e:
        state, extra = "failed", {"reason": str(e)}
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
    folder.update_status(state=state, finished_at=_now(), wall_time_s=wall_before + time.time() - start,
                         **progress, **extra)
    return state


def _train_follower(cfg: RunConfig, run_dir: Path) -> str:
    """Rank > 0 of a multi-process run: resume from the same checkpoint as rank 0 and train
    in step with it (every collective matches), writing nothing."""
    previous = read_status(run_dir) or {}
    if previous.get("state") in FINAL_STATES:
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
    parser.add_argument("--out", default=None, help="run folder (default: results/runs/<config id>)")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config, args.overrides)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    from harness.config import config_fingerprint

    out = Path(args.out) if args.out else Path("results") / "runs" / config_fingerprint(cfg)
    dist = distributed.init_from_env(cfg.train.device)  # torchrun / srun: join the run's processes
    try:
        state = train_run(cfg, out)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    finally:
        distributed.shutdown()
    if not dist.is_main:
        return {"done": 0, "diverged": 3}.get(state, 1)
    status = read_status(out) or {}
    line = f"{state}: {out}"
    if status.get("reason"):
        line += f" ({status['reason']})"
    print(line)
    for warning in status.get("warnings") or []:
        print(f"warning: {warning}", file=sys.stderr)
    return {"done": 0, "diverged": 3}.get(state, 1)


if __name__ == "__main__":
    sys.exit(main())
