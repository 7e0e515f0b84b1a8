"""Time of the evaluation metrics: FID (against pytorch-fid's command line) and image SWD.

    python bench/metrics_time.py [--n-fid 2000] [--n-swd 10000]

1. FID on the same ``--n-fid`` images (two halves, A and B, of random-ish 32×32 RGB images,
   also saved as PNG files): ``python -m pytorch_fid A/ B/ --device cpu`` (its defaults:
   batch 50, min(8, cores) loader workers) against this harness's pipeline
   (:mod:`harness.metrics.fid`, batch ``FIDConfig.batch_size``, B as the cached reference,
   KID included as in the evaluator), each as a fresh process, wall time end to end.
   Goal: ours / pytorch-fid <= 1.0 with the same value.
2. The same evaluation again, now reading B's statistics from the cache; the speed-up is the
   ratio of the two evaluations' in-process times (interpreter start-up and imports
   excluded). Goal >= 1.8. The Fréchet distance itself (scipy ``sqrtm`` of a 2048×2048 matrix)
   is a fixed cost of every evaluation and is shown on its own line.
3. Image SWD (:func:`harness.metrics.image_swd.image_swd`, pggan mode) of two sets of
   ``--n-swd`` 32×32 RGB images in a fresh process: time and peak resident memory.

Without the real Inception weights in torch hub's cache, random weights of the same
architecture are written to a temporary TORCH_HOME (the output says so): times are those of the
real network, values are not comparable with published FIDs. CPU times (user + system, loader
workers included) are shown beside wall times because the machine may be shared. The last line
is one JSON object with the headline numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import torch

from harness.evaluators.feature_cache import reference_statistics, stats_determinants
from harness.evaluators.feature_nets import INCEPTION_EXTRACTOR
from harness.errors import CommandLine
from harness.evaluators.fid import FIDConfig
from harness.metrics import fid as M


def smooth_images(n: int, shift: float, seed: int, size: int = 32) -> torch.Tensor:
    """Random-ish uint8 RGB images: 4×4 noise upsampled bilinearly plus pixel noise."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = torch.nn.functional.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return M.quantize(0.8 * x + 0.2 * torch.rand(n, 3, size, size, generator=g) + shift)


def save_pngs(images: torch.Tensor, folder: Path) -> None:
    from PIL import Image

    folder.mkdir(parents=True)
    for i, img in enumerate(images):
        Image.fromarray(img.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")


def timed_child(cmd: list[str], env: dict) -> tuple[str, float, float]:
    """Run ``cmd``; return its stdout, wall seconds and CPU seconds (it and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    out = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if out.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{out.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return out.stdout, wall, cpu


# ---------------------------------------------------------------------------- child processes


def child_fid(gen_path: str, ref_path: str, cache_dir: str) -> None:
    """One FID + KID evaluation as the ``fid`` evaluator does it; prints a JSON line."""
    cfg = FIDConfig()
    gen, ref = torch.load(gen_path, weights_only=True), torch.load(ref_path, weights_only=True)
    t0 = time.perf_counter()
    net = M.load_fid_network(cfg.weights, cfg.dims)
    extract = lambda x: M.inception_features(x, net, cfg.batch_size)  # noqa: E731
    space = SimpleNamespace(name="inception", dims=net.dims, weights_sha256=net.weights_sha256,
                            extractor=INCEPTION_EXTRACTOR)
    reference, entry = reference_statistics(cache_dir, stats_determinants("bench", "test", ref, space), ref,
                                            cfg.dims, extract, print)
    from_cache = entry["read_from_cache"]
    t1 = time.perf_counter()
    stats = M.FeatureStats.from_features(extract(gen))
    t2 = time.perf_counter()
    fid = M.frechet_distance(stats, reference)
    t3 = time.perf_counter()
    kid, kid_std, _ = M.kernel_inception_distance(stats.features, reference.features,
                                                  cfg.kid_subsets, cfg.kid_subset_size)
    t4 = time.perf_counter()
    print(json.dumps({"fid": fid, "kid": kid, "kid_std": kid_std, "from_cache": from_cache,
                      "t_reference": t1 - t0, "t_generated": t2 - t1, "t_frechet": t3 - t2,
                      "t_kid": t4 - t3, "t_total": t4 - t0}))


def child_swd(n: int) -> None:
    from harness.metrics.image_swd import image_swd  # written by the image-SWD helper

    a, b = smooth_images(n, 0.0, seed=10), smooth_images(n, 0.1, seed=11)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    value = image_swd(a, b, mode="pggan", seed=0)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"swd": value, "seconds": seconds, "peak_mb": peak, "before_mb": rss_before}))


# ---------------------------------------------------------------------------- main


def main() -> None:
    parser = CommandLine(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n-fid", type=int, default=2000, help="images in the FID comparison (two halves)")
    parser.add_argument("--n-swd", type=int, default=10000, help="images per set for image SWD")
    parser.add_argument("--child", choices=["fid", "swd"], help=argparse.SUPPRESS)
    parser.add_argument("--args", nargs="*", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "fid":
        return child_fid(*args.args)
    if args.child == "swd":
        return child_swd(int(args.args[0]))

    rows = []
    with tempfile.TemporaryDirectory(prefix="metrics_time_") as tmp:
        tmp = Path(tmp)
        env = dict(os.environ)
        if M.hub_weights_path().is_file():
            sha = M.sha256_file(M.hub_weights_path())
            weights = "real pytorch-fid weights" if sha == M.FID_WEIGHTS_SHA256 else f"weights with sha256 {sha[:12]} (not the official file)"
            weights += f" from {M.hub_weights_path()}"
        else:
            env["TORCH_HOME"] = str(tmp / "torch_home")
            M.save_random_fid_weights(tmp / "torch_home" / "hub" / "checkpoints" / M.FID_WEIGHTS_FILE)
            weights = "RANDOM weights of the FID Inception architecture (real weights not found): values are not real FIDs"
        half = args.n_fid // 2
        a, b = smooth_images(half, 0.0, seed=1), smooth_images(half, 0.1, seed=2)
        save_pngs(a, tmp / "A")
        save_pngs(b, tmp / "B")
        torch.save(a, tmp / "A.pt")
        torch.save(b, tmp / "B.pt")

        out, cli_wall, cli_cpu = timed_child([sys.executable, "-m", "pytorch_fid", str(tmp / "A"), str(tmp / "B"),
                                              "--device", "cpu"], env)
        cli_fid = float(re.search(r"FID:\s+(\S+)", out).group(1))
        ours_cmd = [sys.executable, __file__, "--child", "fid", "--args", str(tmp / "A.pt"), str(tmp / "B.pt"), str(tmp / "cache")]
        out, first_wall, first_cpu = timed_child(ours_cmd, env)
        first = json.loads(out.strip().splitlines()[-1])
        out, second_wall, second_cpu = timed_child(ours_cmd, env)
        second = json.loads(out.strip().splitlines()[-1])
        assert not first["from_cache"] and second["from_cache"]
        out, _, _ = timed_child([sys.executable, __file__, "--child", "swd", "--args", str(args.n_swd)], env)
        swd = json.loads(out.strip().splitlines()[-1])

    ratio = first_wall / cli_wall
    speedup = first["t_total"] / second["t_total"]
    diff = abs(first["fid"] - cli_fid)
    rows = [
        ("pytorch-fid CLI, FID of A vs B", f"{cli_wall:8.1f} s", f"{cli_cpu:8.1f} s", f"FID {cli_fid:.6f}"),
        ("ours, 1st evaluation (B computed, cached)", f"{first_wall:8.1f} s", f"{first_cpu:8.1f} s",
         f"FID {first['fid']:.6f}  KID {first['kid']:.3e}"),
        ("ours, 2nd evaluation (B from cache)", f"{second_wall:8.1f} s", f"{second_cpu:8.1f} s",
         f"FID {second['fid']:.6f}  KID {second['kid']:.3e}"),
    ]
    print(f"weights: {weights}")
    print(f"FID images: {half} (A) + {half} (B), 32x32 RGB; threads: {torch.get_num_threads()}, cores: {os.cpu_count()}")
    print(f"{'':44s} {'wall':>10s} {'cpu':>10s}  value")
    for name, wall, cpu, value in rows:
        print(f"{name:44s} {wall:>10s} {cpu:>10s}  {value}")
    print("in-process parts (s)        reference  generated  frechet    kid   total")
    for name, r in (("1st evaluation", first), ("2nd evaluation", second)):
        print(f"  {name:24s} {r['t_reference']:9.1f} {r['t_generated']:10.1f} {r['t_frechet']:8.1f} {r['t_kid']:6.1f} {r['t_total']:7.1f}")
    print(f"ours / pytorch-fid (wall, end to end): {ratio:.3f}   (cpu: {first_cpu / cli_cpu:.3f})   goal <= 1.0")
    print(f"|FID ours - FID pytorch-fid|: {diff:.3e}   (relative {diff / abs(cli_fid):.1e})")
    print(f"cached speed-up (1st / 2nd evaluation, in process): {speedup:.2f}   goal >= 1.8")
    print(f"image SWD (pggan), 2 x {args.n_swd} 32x32 RGB: {swd['seconds']:.1f} s, peak RSS {swd['peak_mb']:.0f} MB "
          f"(process before the call: {swd['before_mb']:.0f} MB), mean {swd['swd']['mean']:.3f}")
    print(json.dumps({"fid_over_pytorch_fid": round(ratio, 4), "fid_value_abs_diff": diff,
                      "cached_speedup": round(speedup, 3), "swd_10k_peak_mb": round(swd["peak_mb"], 1)}))


if __name__ == "__main__":
    main()
