"""What the forkserver's preload saves each run (issue 17's time budget), measured in one run.

    python bench/run_start.py [--runs 4]

The local executor forks every run from a forkserver that has imported
``harness.sweep._preload``. Here the same short run (scikit-learn's digits at 8×8 pixels, the
small convnet, WAE-MMD, 2 epochs, latent and reconstruction metrics: it uses torchvision, POT
and scipy as MNIST runs do) is started ``--runs`` times from each of two forkservers, in
alternation: one preloading what the executor preloads now, one preloading the plug-ins only
(``bench/_preload_plugins_only.py``, the preload before 2026-12-06). A run's time is from
``Process.start()`` to its end, as a sweep sees it; the runs' metrics must be equal bit for bit.
Each variant runs in its own interpreter (a process has one forkserver). The last line is JSON:
median seconds per run of each variant and the saving.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness.errors import CommandLine

CONFIG = {
    "data": {"name": "digits"},
    "model": {"arch": "small_conv", "width": 16, "latent_dim": 8, "prior": "sphere"},
    "method": {"name": "mmd", "weight": 10.0},
    "optim": {"lr": 1e-3},
    "train": {"epochs": 2, "batch_size": 64, "device": "cpu", "num_threads": 1, "progress": "off"},
    "eval": {"metrics": ["latent", "recon"], "every": 1},
    "seed": 0,
}
VARIANTS = {"now": "harness.sweep._preload", "plugins_only": "_preload_plugins_only"}


def one_run(run_dir: str) -> None:
    from harness.train import config_from_dict, train_run
    assert train_run(config_from_dict(CONFIG), run_dir) == "done"


def variant(name: str, runs: int) -> dict:
    """In this interpreter: ``runs`` runs forked from a forkserver preloading VARIANTS[name]."""
    import multiprocessing

    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload([VARIANTS[name]])
    ctx.Process(target=time.sleep, args=(0,)).start()  # starts the forkserver (its imports are not a run's)
    times, metrics = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            p = ctx.Process(target=one_run, args=(d,))
            p.start()
            p.join()
            times.append(time.perf_counter() - t)
            assert p.exitcode == 0, f"the run failed (exit {p.exitcode})"
            metrics.append([{k: v for k, v in json.loads(line).items() if not k.endswith("_time_s")}
                            for line in (Path(d) / "metrics.jsonl").read_text().splitlines()])
    return {"times": times, "metrics": metrics}


def main(argv: list[str] | None = None) -> int:
    p = CommandLine(prog="python bench/run_start.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=4)
    p.add_argument("--variant", choices=list(VARIANTS), help=argparse.SUPPRESS)  # the child interpreter of one variant
    args = p.parse_args(argv)
    if args.variant:  # the child interpreter of one variant
        print(json.dumps(variant(args.variant, args.runs)))
        return 0
    out = {name: {"times": [], "metrics": []} for name in VARIANTS}
    for _ in range(2):  # alternate, so that a drift of the machine's speed hits both alike
        for name in VARIANTS:
            res = subprocess.run([sys.executable, __file__, "--variant", name, "--runs", str(args.runs)],
                                 capture_output=True, text=True, check=True)
            got = json.loads(res.stdout.strip().splitlines()[-1])
            out[name]["times"] += got["times"]
            out[name]["metrics"] += got["metrics"]
    first = out["now"]["metrics"][0]
    same = all(m == first for v in out.values() for m in v["metrics"])
    med = {name: statistics.median(v["times"]) for name, v in out.items()}
    for name, v in out.items():
        print(f"{name:13s} runs {len(v['times'])}, median {med[name]:.2f} s per run "
              f"(min {min(v['times']):.2f}, max {max(v['times']):.2f})")
    print(json.dumps({"runs_per_variant": 2 * args.runs, "run_s_now": round(med["now"], 3),
                      "run_s_plugins_only": round(med["plugins_only"], 3),
                      "saved_s_per_run": round(med["plugins_only"] - med["now"], 3),
                      "ratio": round(med["plugins_only"] / med["now"], 3), "metrics_bitwise_equal": same}))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
