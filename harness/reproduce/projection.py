"""Projected wall time of a set of study sweeps on CPU (issue 17: print it before training starts).

A run costs ``STARTUP_S`` + epochs × the time of one epoch + the evaluations, each the sum of
its metrics' times. The constants are medians measured on the committed CPU-scale runs
(``epoch_time_s`` and ``eval_time_s`` of ``results/<study>/*/metrics.jsonl``, one torch thread
per run, the shared 2-core machine at a load average of about 6), so the projection for
2 idle cores errs on the long side. Runs are shared between studies by id (a run's id is the
hash of its config) and counted once; ``workers`` runs go at once.
"""

from __future__ import annotations

from pathlib import Path

from harness.sweep.spec import load_sweep

STARTUP_S = 1.0  # process start, data, model (lambda: 13.8 s a run = 3 × 2.9 + 4.2 + ~1)
# seconds per epoch over 10,000 training items, by (architecture, image side); None: any side
EPOCH_S = {("small_conv", 28): 2.9, ("small_conv", 14): 0.97, ("small_conv", 8): 0.51, ("mlp", None): 0.9}
SYNTHETIC_EPOCH_S = 0.09  # the synthetic latent task (80 epochs ≈ 7.5 s)
# seconds per evaluation, by metric, at 28 pixels (fid + image_swd = 3.1 s, + recon + latent = 4.2 s,
# + prdc + knn = 6.2 s; recon + knn + artifacts = 10.4 s; measured on the committed runs)
EVAL_S = {"fid": 2.0, "image_swd": 1.1, "recon": 0.6, "latent": 0.5, "prdc": 0.8, "knn": 1.2, "artifacts": 8.6}
# image_swd after a run's first evaluation: the real images' half is cached (harness.metrics.image_swd
# ReferenceCache; bench/image_swd_reference.py measures 2.06x)
SWD_LATER_S = 0.55


def run_seconds(config) -> float:
    """Projected seconds of one run of ``config`` (a harness.config run config)."""
    train, data, model, ev = config.train, config.data, config.model, config.eval
    if data.name == "synthetic":
        return STARTUP_S + train.epochs * SYNTHETIC_EPOCH_S
    side = data.image_size or 28
    epoch = EPOCH_S.get((model.arch, side), EPOCH_S.get((model.arch, None), EPOCH_S[("small_conv", 28)]))
    items = (data.train_limit or 60000) / 10000
    evals = 1 if not ev.every else train.epochs // ev.every + 1  # every k epochs, and at epoch 0
    per_eval = sum(EVAL_S.get(m, 1.0) for m in ev.metrics) * (side / 28) ** 2 if side < 28 else \
        sum(EVAL_S.get(m, 1.0) for m in ev.metrics)
    later_swd = (evals - 1) * (EVAL_S["image_swd"] - SWD_LATER_S) if "image_swd" in ev.metrics else 0.0
    return STARTUP_S + train.epochs * epoch * items + evals * per_eval - later_swd


def project(files: list[str | Path], workers: int = 2, done: set[str] | None = None) -> dict:
    """{"runs": unique runs not in ``done``, "seconds": projected wall seconds, "per_file": {file: (runs, s)}}."""
    seen: set[str] = set(done or ())
    per_file, total = {}, 0.0
    for f in files:
        runs = [r for r in load_sweep(f, []).runs if r.id not in seen]
        seen |= {r.id for r in runs}
        seconds = sum(run_seconds(r.config) for r in runs)
        per_file[str(f)] = (len(runs), seconds / workers)
        total += seconds
    return {"runs": sum(n for n, _ in per_file.values()), "seconds": total / workers, "per_file": per_file}
