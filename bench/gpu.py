"""GPU benchmark: one short script to run whenever a GPU is available (a few minutes).

    python bench/gpu.py [--device cuda] [--rounds 5] [--steps 20] [--pack 4] [--smoke]

1. **A2 at CIFAR-10 shape** (3×32×32, 50,000 random uint8 images resident on the device),
   batch 64, MoCA (K = 10,000, latent 128): ms per optimiser step and seconds per epoch
   (781 steps, one real ``train_epoch``) for fp32 / bf16 × compile off / on. Goal: an epoch
   in at most 5 s on an H100-class GPU.
2. **MoCA over the plain autoencoder** (``none``), same precision and compile setting, ms
   per step. Goal: at most 1.15.
3. **Runs per hour with packing**: a small CPU-scale study (MoCA, small_conv on the 8×8
   digits, 5 epochs) as a real local sweep, one run per GPU at a time against ``--pack``
   runs sharing the GPU (``--workers-per-gpu``).
4. **FID Inception images per second** (pytorch-fid's network, 32×32 inputs resized to
   299×299, batch 200), with the real weights when torch hub's cache holds them, else random
   weights of the same architecture (said so; the speed is the same).

Steps are timed in interleaved rounds and summarised by their median (warm-up steps first,
compilation excluded and reported separately). ``--smoke`` shrinks everything to run in
seconds on a CPU (what the test suite does): its numbers mean nothing. The last line is one
JSON object of the numbers and ratios.
"""

from __future__ import annotations

import copy
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.errors import CommandLine
from harness.config import config_from_dict  # noqa: E402
from harness.datasets import DataBundle  # noqa: E402
from harness.trainer import Trainer  # noqa: E402

GOAL_EPOCH_S = 5.0
GOAL_MOCA_OVER_NONE = 1.15


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def cifar_shaped(n: int, size: int = 32) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)
    return DataBundle("bench_cifar", train_x=x, test_x=x[:256])


def a2_tree(method: str, precision: str, compile_: bool, device: str, smoke: bool) -> dict:
    m = {"name": method}
    if method == "moca":
        m.update(queue_size=10000, tau=0.1, momentum=0.999)
    return {
        "data": {"name": "cifar10"},  # replaced by the in-memory bundle (validation checks a2 against 3x32x32 images)
        "model": {"arch": "a2", "latent_dim": 128, "prior": "sphere", **({"width": 4} if smoke else {})},
        "method": {**m, "weight": 10000.0 if method == "moca" else 1.0},
        "train": {"epochs": 100, "batch_size": 64, "device": device, "progress": "off",
                  "precision": precision, "compile": compile_},
        "seed": 0,
    }


class Contender:
    """A trainer plus a fixed cycle of its batches; ``time(n)`` = seconds per step over n steps."""

    def __init__(self, name: str, tree: dict, data: DataBundle, warmup: int):
        self.name = name
        start = time.perf_counter()
        self.trainer = Trainer(config_from_dict(tree), data=data)
        self.batches = [b for _, b in zip(range(8), self.trainer.batches(1))]
        self.i = 0
        for _ in range(warmup):  # compilation and cudnn autotuning happen here
            self.step()
        sync(self.trainer.device)
        self.setup_s = time.perf_counter() - start

    def step(self) -> None:
        self.trainer.train_step(self.batches[self.i % len(self.batches)])
        self.i += 1

    def time(self, n: int) -> float:
        sync(self.trainer.device)
        t0 = time.perf_counter()
        for _ in range(n):
            self.step()
        sync(self.trainer.device)
        return (time.perf_counter() - t0) / n

    def epoch_s(self) -> float:
        sync(self.trainer.device)
        t0 = time.perf_counter()
        self.trainer.train_epoch()
        sync(self.trainer.device)
        return time.perf_counter() - t0


def bench_steps(args, device: str) -> tuple[dict, list[str]]:
    n = 64 * 2 if args.smoke else 50000
    data = cifar_shaped(n)
    warmup = 2 if args.smoke else 10
    specs = [("moca", p, c) for p in ("fp32", "bf16") for c in ((False, True) if args.compile else (False,))]
    specs += [("none", p, c) for _, p, c in specs]
    contenders = {}
    for method, precision, compile_ in specs:
        name = f"{method}_{precision}" + ("_compiled" if compile_ else "")
        contenders[name] = Contender(name, a2_tree(method, precision, compile_, device, args.smoke), data, warmup)
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, c in contenders.items():
            times[name].append(c.time(args.steps))
    ms = {k: 1000 * statistics.median(v) for k, v in times.items()}
    epoch = {k: c.epoch_s() for k, c in contenders.items() if k.startswith("moca")}
    steps_per_epoch = next(iter(contenders.values())).trainer.steps_per_epoch
    out = {f"{k}_ms_per_step": round(v, 3) for k, v in ms.items()}
    out.update({f"{k}_s_per_epoch": round(v, 3) for k, v in epoch.items()})
    out.update({f"{k}_setup_s": round(c.setup_s, 1) for k, c in contenders.items()})
    out["steps_per_epoch"] = steps_per_epoch
    out["bf16_over_fp32"] = round(ms["moca_bf16"] / ms["moca_fp32"], 4)
    for p in ("fp32", "bf16"):
        out[f"moca_over_none_{p}"] = round(ms[f"moca_{p}"] / ms[f"none_{p}"], 4)
        if args.compile:
            out[f"compiled_over_eager_{p}"] = round(ms[f"moca_{p}_compiled"] / ms[f"moca_{p}"], 4)
            out[f"moca_over_none_{p}_compiled"] = round(ms[f"moca_{p}_compiled"] / ms[f"none_{p}_compiled"], 4)
    best = min(epoch, key=epoch.get)
    out["best_epoch_config"], out["best_epoch_s"] = best, round(epoch[best], 3)
    lines = [f"A2, 3x32x32, batch 64, MoCA K=10,000, {len(data.train_x)} images, {steps_per_epoch} steps/epoch "
             f"({args.rounds} rounds x {args.steps} steps, medians)",
             f"{'contender':26s} {'ms/step':>9s} {'s/epoch':>9s} {'setup s':>8s}"]
    for k in contenders:
        e = f"{epoch[k]:9.2f}" if k in epoch else f"{'':9s}"
        lines.append(f"{k:26s} {ms[k]:9.2f} {e} {contenders[k].setup_s:8.1f}")
    return out, lines


def bench_packing(args, device: str) -> tuple[dict, list[str]]:
    """A real local sweep of small runs: one per GPU at a time, then ``--pack`` per GPU."""
    from harness.sweep.__main__ import main as sweep_main

    runs = 2 if args.smoke else 2 * args.pack
    base = {"data": {"name": "digits"}, "model": {"arch": "small_conv", "latent_dim": 16, "prior": "sphere",
                                                  "width": 8 if args.smoke else 32},
            "method": {"name": "moca", "weight": 100.0, "queue_size": 1000},
            "train": {"epochs": 1 if args.smoke else 5, "batch_size": 64, "device": device, "progress": "off"}}
    out, lines = {}, []
    with tempfile.TemporaryDirectory(prefix="bench_gpu_") as tmp:
        # warm-up: the executor's forkserver (torch and the plug-ins imported once) starts here,
        # so neither timed sweep pays for it
        doc = {"name": "warmup", "base": {**copy.deepcopy(base), "train": {**base["train"], "epochs": 1}},
               "grid": {"seed": [0]}}
        (Path(tmp) / "warmup.yaml").write_text(yaml.safe_dump(doc))
        sweep_main([str(Path(tmp) / "warmup.yaml"), "--results", str(Path(tmp) / "results"), "--gpus", "0"])
        for per_gpu in (1, args.pack):
            doc = {"name": f"pack{per_gpu}", "base": copy.deepcopy(base), "grid": {"seed": list(range(runs))}}
            path = Path(tmp) / f"pack{per_gpu}.yaml"
            path.write_text(yaml.safe_dump(doc))
            t0 = time.perf_counter()
            code = sweep_main([str(path), "--results", str(Path(tmp) / "results"), "--gpus", "0",
                               "--workers-per-gpu", str(per_gpu)])
            wall = time.perf_counter() - t0
            if code != 0:
                raise RuntimeError(f"the packing sweep with {per_gpu} runs per GPU failed (exit {code})")
            out[f"runs_per_hour_pack{per_gpu}"] = round(runs * 3600 / wall, 1)
            lines.append(f"{runs} small runs, {per_gpu} per GPU at a time: {wall:7.1f} s  "
                         f"{runs * 3600 / wall:8.1f} runs/hour")
    out["packing_speedup"] = round(out[f"runs_per_hour_pack{args.pack}"] / out["runs_per_hour_pack1"], 4)
    return out, lines


def bench_fid(args, device: str) -> tuple[dict, list[str]]:
    from harness.metrics import fid as M

    with tempfile.TemporaryDirectory(prefix="bench_fid_") as tmp:
        if M.hub_weights_path().is_file():
            weights, note = None, "real weights" if M.sha256_file(M.hub_weights_path()) == M.FID_WEIGHTS_SHA256 else "local weights"
            net = M.load_fid_network(weights, 2048, device)
        else:
            path = M.save_random_fid_weights(Path(tmp) / M.FID_WEIGHTS_FILE)
            net = M.load_fid_network(path, 2048, device, expected_sha256=M.sha256_file(path))
            note = "RANDOM weights (real ones not found; same speed)"
        n = 4 if args.smoke else 10000
        images = cifar_shaped(n).train_x
        M.inception_features(images[: min(n, 400)], net, 200, device)  # warm-up
        sync(torch.device(device))
        t0 = time.perf_counter()
        M.inception_features(images, net, 200, device)
        sync(torch.device(device))
        rate = n / (time.perf_counter() - t0)
    return {"fid_images_per_s": round(rate, 1)}, [f"FID Inception features, {n} 32x32 images, batch 200: "
                                                   f"{rate:9.1f} images/s ({note})"]


def main(argv: list[str] | None = None) -> int:
    parser = CommandLine(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20, help="steps per timing within a round")
    parser.add_argument("--pack", type=int, default=4, help="runs sharing the GPU in the packing test")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="skip torch.compile")
    parser.add_argument("--skip", nargs="*", default=[], choices=["steps", "packing", "fid"])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds on a CPU (numbers meaningless)")
    args = parser.parse_args(argv)
    if args.smoke:
        args.rounds, args.steps, args.pack = min(args.rounds, 2), min(args.steps, 2), 2
        torch.set_num_threads(1)  # tiny tensors; a shared CPU does not get oversubscribed
    device = args.device
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
    else:
        name = f"CPU ({os.cpu_count()} cores, {torch.get_num_threads()} threads)"
    print(f"device: {name}; torch {torch.__version__}" + ("; SMOKE MODE: numbers are meaningless" if args.smoke else ""))
    result: dict = {"device": name, "torch": torch.__version__, "smoke": args.smoke}
    for part, fn in (("steps", bench_steps), ("packing", bench_packing), ("fid", bench_fid)):
        if part in args.skip:
            continue
        numbers, lines = fn(args, device)
        print("\n".join(lines))
        result.update(numbers)
    ratios = [k for k in result if "_over_" in k or k == "packing_speedup"]
    if ratios:
        print("ratios: " + ", ".join(f"{k} {result[k]}" for k in ratios))
    if "best_epoch_s" in result:
        result["goal_epoch_le_5s"] = result["best_epoch_s"] <= GOAL_EPOCH_S
        key = "moca_over_none_bf16_compiled" if args.compile else "moca_over_none_bf16"
        result["goal_moca_over_none_le_1_15"] = result[key] <= GOAL_MOCA_OVER_NONE
        print(f"goals: A2 CIFAR-10 epoch <= {GOAL_EPOCH_S} s: {result['best_epoch_s']} s ({result['best_epoch_config']}); "
              f"MoCA/none <= {GOAL_MOCA_OVER_NONE}: {result[key]} ({key})")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
