"""The image SWD evaluator's cached reference half (issue 17's time budget), measured in one run.

    python bench/image_swd_reference.py [--evals 5] [--images 500]

The setting of the convergence studies (``sweeps/convergence.yaml``: swd_pytorch mode, 500 test
images of 28×28 MNIST-sized digits against 500 samples, one torch thread): the same sequence of
``--evals`` sample sets (one per "epoch") is measured against the same real set, once computing
both halves every time (``image_swd`` as before) and once with a
:class:`harness.metrics.image_swd.ReferenceCache` (the real images' sorted projections computed at
the first evaluation and reused). The two must agree bit for bit; the ratio of the per-evaluation
times, first evaluation excluded, is the speed-up (goal: >= 1.6; a convergence run evaluates 21
times). Images are random-ish so that the bench needs no dataset. The last line is JSON.
"""

from __future__ import annotations

import json
import statistics
import time

import torch

from harness.errors import CommandLine
from harness.metrics.image_swd import ReferenceCache, image_swd


def digits_like(n: int, seed: int) -> torch.Tensor:
    """uint8 1×28×28 images: a dark background with a bright smooth blob (MNIST-like ties at 0)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 1, 7, 7, generator=g)
    x = torch.nn.functional.interpolate(low, size=(28, 28), mode="bilinear", align_corners=False)
    return (x.sub(0.55).clamp(min=0) * 600).clamp(max=255).to(torch.uint8)


def main(argv: list[str] | None = None) -> int:
    p = CommandLine(prog="python bench/image_swd_reference.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--evals", type=int, default=5)
    p.add_argument("--images", type=int, default=500)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    real = digits_like(args.images, 0)
    fakes = [digits_like(args.images, 1 + k) for k in range(args.evals)]
    times = {"recomputed": [], "cached": []}
    values = {"recomputed": [], "cached": []}
    for name in ("recomputed", "cached"):
        cache = ReferenceCache() if name == "cached" else None
        for fake in fakes:
            t = time.perf_counter()
            values[name].append(image_swd(fake, real, mode="swd_pytorch", seed=1, reference=cache))
            times[name].append(time.perf_counter() - t)
    same = values["recomputed"] == values["cached"]
    per = {k: statistics.median(v[1:]) for k, v in times.items()}
    print(f"image_swd, {args.images} images per set, swd_pytorch, one thread, {args.evals} evaluations")
    for k, v in times.items():
        print(f"  {k:10s} " + " ".join(f"{x:.2f}" for x in v) + f" s (median after the first: {per[k]:.2f} s)")
    print(f"  values bitwise the same: {same}; speed-up {per['recomputed'] / per['cached']:.2f}x")
    print(json.dumps({"bench": "image_swd_reference", "images": args.images, "evals": args.evals,
                      "recomputed_s": round(per["recomputed"], 3), "cached_s": round(per["cached"], 3),
                      "speedup": round(per["recomputed"] / per["cached"], 2), "bitwise_same": same}))
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
