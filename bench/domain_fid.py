"""Time of the CPU-scale image metrics: the domain network, domain FID, and the Fréchet distance.

    python bench/domain_fid.py [--data-root data] [--cache-root DIR] [--skip-pytorch-fid]

1. Training the ``lenet`` feature network on MNIST's 60,000 training images (the recipe of
   :mod:`harness.evaluators.lenet_training`): wall and CPU time and test accuracy (goal: well under a
   minute on 2 cores, >= 99%). It is cached like any run's (``--cache-root``, default
   ``$MOCA_CACHE_DIR`` or ``~/.cache/moca-harness``); when it is already there, the times
   recorded in its cache record when it was trained are shown (delete
   ``<cache>/feature_nets/`` to train it again), and the time to load and verify it.
2. One ``fid`` evaluation with ``eval.fid.features=lenet`` (what the trainer calls every
   epoch: decode the fixed prior draws with an untrained ``small_conv`` autoencoder, extract
   features, Fréchet distance and KID against the cached statistics of the 10,000 MNIST test
   images), for 5,000 and 10,000 generated samples, on ONE thread; medians of 3 calls
   (goal: about 2 s or less for 5,000). The same with ``prdc`` (k = 5) alongside.
3. The Fréchet distance at 2048 dimensions (covariances of 10,000 correlated random
   features): :func:`harness.metrics.fid.frechet_distance_arrays` against pytorch-fid's
   ``calculate_frechet_distance`` (scipy ``sqrtm``), time and value.

The last line is one JSON object with the headline numbers.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import time
import warnings

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from harness.errors import CommandLine
from harness.config import config_from_dict
from harness.datasets import load_dataset
from harness.metrics import fid as M
from harness.evaluators import lenet_training as L


def median_time(fn, rounds: int = 3) -> tuple[float, float, object]:
    """Median wall and median CPU (process, all threads) seconds of ``fn()``, and its value.
    CPU time is the steadier measure on a shared machine."""
    walls, cpus, out = [], [], None
    for _ in range(rounds):
        t, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - t)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus), out


def correlated_stats(n: int, d: int, seed: int, shift: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(d, d)) / np.sqrt(d)
    x = np.abs(rng.normal(size=(n, d)) @ mix) + shift
    return x.mean(0), np.cov(x, rowvar=False)


def main() -> None:
    parser = CommandLine(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-root", default="data")
    parser.add_argument("--cache-root", default=None, help="feature-network cache (default: MOCA_CACHE_DIR or ~/.cache/moca-harness)")
    parser.add_argument("--skip-pytorch-fid", action="store_true", help="skip the 20-90 s scipy sqrtm")
    args = parser.parse_args()
    out: dict = {}
    threads = torch.get_num_threads()

    with tempfile.TemporaryDirectory(prefix="domain_fid_") as tmp:
        # 1. training the domain network (all threads)
        tree = {"data": {"name": "mnist", "root": args.data_root},
                "model": {"arch": "small_conv", "latent_dim": 8, "prior": "sphere"},
                "eval": {"metrics": ["fid", "prdc"], "fid": {"features": "lenet", "cache_dir": f"{tmp}/fid"},
                         "prdc": {"features": "lenet", "k": 5}}}
        cfg = config_from_dict(tree)
        data = load_dataset(cfg.data, cfg.seed)
        net = L.load_or_train("mnist", data.train_x, data.train_y, data.test_x, data.test_y, root=args.cache_root)
        out["lenet_train_s"], out["lenet_train_cpu_s"] = net.info["train_time_s"], net.info["train_cpu_s"]
        out["lenet_test_accuracy"] = net.test_accuracy
        print(f"lenet: trained on 60,000 MNIST images in {out['lenet_train_s']:.1f} s wall, "
              f"{out['lenet_train_cpu_s']:.1f} s CPU (1 thread), test accuracy {100 * net.test_accuracy:.2f}%, "
              f"sha256 {net.weights_sha256[:12]}")
        t = time.perf_counter()
        again = L.load_or_train("mnist", data.train_x, data.train_y, data.test_x, data.test_y, root=args.cache_root)
        out["lenet_cache_load_s"] = round(time.perf_counter() - t, 3)
        assert again.weights_sha256 == net.weights_sha256

        # 2. one evaluation, one thread
        from harness.archs import build_autoencoder
        from harness.evaluators import build_evaluator, make_context
        from harness.priors import build_prior

        torch.set_num_threads(1)
        prior = build_prior("sphere", 8)
        torch.manual_seed(0)
        model = build_autoencoder(cfg.model, data.item_shape).eval()
        for n in (5000, 10000):
            for metric in ("fid", "prdc"):
                t = config_from_dict({**tree, "data": {**tree["data"]},
                                      "eval": {**tree["eval"],
                                               "fid": {**tree["eval"]["fid"], "num_samples": n, "reference_samples": 10000},
                                               "prdc": {"features": "lenet", "k": 5, "num_samples": n}}})
                ev = build_evaluator(metric, make_context(t, data, prior, "cpu", None))
                with torch.no_grad(), threadpool_limits(1):  # numpy's BLAS on one thread too
                    seconds, cpu, values = median_time(lambda: ev(model, 1))
                out[f"{metric}_eval_{n}_s"], out[f"{metric}_eval_{n}_cpu_s"] = round(seconds, 3), round(cpu, 3)
                n_ref = 10000 if metric == "fid" else n
                print(f"{metric} (lenet), {n:,} generated vs {n_ref:,} test images, 1 thread: {seconds:.2f} s wall, "
                      f"{cpu:.2f} s CPU  {values}")
        torch.set_num_threads(threads)

    # 3. Fréchet distance at 2048 dimensions
    mu1, s1 = correlated_stats(10000, 2048, 1, 0.0)
    mu2, s2 = correlated_stats(10000, 2048, 2, 0.01)
    ours_s, ours_cpu, ours = median_time(lambda: M.frechet_distance_arrays(mu1, s1, mu2, s2))
    out.update(frechet_ours_s=round(ours_s, 3), frechet_ours_cpu_s=round(ours_cpu, 3), frechet_ours=ours)
    print(f"Fréchet distance 2048-d, ours (eigh): {ours_s:.2f} s wall, {ours_cpu:.2f} s CPU (median of 3, "
          f"{threads} threads), value {ours:.9f}")
    if not args.skip_pytorch_fid:
        from pytorch_fid.fid_score import calculate_frechet_distance

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SciPy 1.17: 'disp' is deprecated
            ref_s, ref_cpu, ref = median_time(lambda: float(calculate_frechet_distance(mu1, s1, mu2, s2)), rounds=1)
        out.update(frechet_pytorch_fid_s=round(ref_s, 2), frechet_pytorch_fid_cpu_s=round(ref_cpu, 2),
                   frechet_pytorch_fid=ref, frechet_speedup_wall=round(ref_s / ours_s, 1),
                   frechet_speedup_cpu=round(ref_cpu / ours_cpu, 1), frechet_rel_diff=abs(ours - ref) / abs(ref))
        print(f"Fréchet distance 2048-d, pytorch-fid (scipy sqrtm): {ref_s:.1f} s wall, {ref_cpu:.1f} s CPU, "
              f"value {ref:.9f}; speed-up {ref_s / ours_s:.1f}x wall, {ref_cpu / ours_cpu:.1f}x CPU, "
              f"relative difference {abs(ours - ref) / abs(ref):.1e}")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
