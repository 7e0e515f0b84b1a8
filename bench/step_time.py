"""Step-time benchmark of the trainer and of every regularizer (ratios measured in one run).

    python bench/step_time.py [--device cpu|cuda] [--rounds 15] [--steps 10]

1. ``trainer_over_bare``: the common trainer's optimiser step (method ``none``) over a bare
   hand-written PyTorch loop (encoder, normalise, decoder, summed squared error, Adam) for the
   same model and batch. Goal: ≤ 1.05.
2. ``<method>_over_none``: each regularizer's training step over the plain autoencoder's,
   on the small convnet with MNIST-size inputs (1×28×28), batch 64, MoCA with K = 10,000.
   Goal for MoCA: ≤ 1.25. Besides every registered method with its defaults, MoCA's
   ablation variants: ``moca_inbatch`` (in-batch negatives, no queue), ``moca_online``
   (online keys, no momentum encoder, K = 10,000) and ``uniformity_queue`` (K = 10,000).

Timings are interleaved in rounds (bare, trainer, each method, repeat) and summarised by the
median, so a noisy neighbour slows every contender alike. The last line printed is one JSON
object of the ratios, for tracking over time.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch

from harness.errors import CommandLine
from harness.config import config_from_dict
from harness.datasets import DataBundle
from harness.trainer import Trainer, reconstruction_loss
from harness.methods import REGULARIZERS

BATCH = 64


def base_tree(method: dict, device: str) -> dict:
    prior = "gaussian" if method["name"] == "cwae" else "sphere"
    return {
        "data": {"name": "mnist"},  # replaced by the in-memory bundle below (validation checks small_conv against 1x28x28)
        "model": {"arch": "small_conv", "latent_dim": 64, "prior": prior},
        "method": method,
        "train": {"epochs": 1000, "batch_size": BATCH, "device": device, "progress": "off"},
        "seed": 0,
    }


def mnist_sized_data(n: int = 4096) -> DataBundle:
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, 1, 28, 28), generator=g, dtype=torch.uint8)
    return DataBundle("bench", train_x=x, test_x=x[:256])


def make_trainer(method: dict, device: str, data: DataBundle) -> Trainer:
    return Trainer(config_from_dict(base_tree(method, device)), data=data)


def sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def trainer_stepper(trainer: Trainer):
    batches = [b for _, b in zip(range(8), trainer.batches(1))]
    state = {"i": 0}

    def step():
        trainer.train_step(batches[state["i"] % len(batches)])
        state["i"] += 1

    return step


def bare_stepper(trainer: Trainer):
    """The same model, optimiser settings and batches, in the shortest loop one would write."""
    import copy

    model = copy.deepcopy(trainer.model)
    opt = torch.optim.Adam(model.parameters(), lr=trainer.cfg.optim.lr)
    batches = [b for _, b in zip(range(8), trainer.batches(1))]
    state = {"i": 0}

    def step():
        x = batches[state["i"] % len(batches)]
        z = torch.nn.functional.normalize(model.encoder(x), dim=-1)
        loss = reconstruction_loss(model.decoder(z), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        state["i"] += 1

    return step


def time_steps(step, n: int, device: str) -> float:
    sync(device)
    t0 = time.perf_counter()
    for _ in range(n):
        step()
    sync(device)
    return (time.perf_counter() - t0) / n


def main(argv=None) -> int:
    parser = CommandLine(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--steps", type=int, default=10, help="steps per timing within a round")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    data = mnist_sized_data()
    methods = {name: {"name": name} for name in REGULARIZERS.names()}
    methods["moca"] = {"name": "moca", "queue_size": 10000}
    methods["moca_inbatch"] = {"name": "moca", "negatives": "batch"}
    methods["moca_online"] = {"name": "moca", "key_encoder": "online", "queue_size": 10000}
    methods["uniformity_queue"] = {"name": "uniformity", "queue_size": 10000}
    contenders = {"bare": bare_stepper(make_trainer({"name": "none"}, args.device, data))}
    for name, method in methods.items():
        contenders[name] = trainer_stepper(make_trainer(method, args.device, data))
    for step in contenders.values():  # warm-up: allocator, Adam state, lazy init
        for _ in range(3):
            step()
    times: dict[str, list[float]] = {k: [] for k in contenders}
    for _ in range(args.rounds):
        for name, step in contenders.items():
            times[name].append(time_steps(step, args.steps, args.device))
    median = {k: statistics.median(v) for k, v in times.items()}

    ratios = {"trainer_over_bare": median["none"] / median["bare"]}
    for name in methods:
        if name != "none":
            ratios[f"{name}_over_none"] = median[name] / median["none"]

    print(f"device={args.device} threads={torch.get_num_threads()} torch={torch.__version__} "
          f"arch=small_conv input=1x28x28 batch={BATCH} moca K=10000 rounds={args.rounds}x{args.steps} steps")
    print(f"{'contender':<18}{'median ms/step':>16}{'ratio':>10}   vs")
    print(f"{'bare':<18}{1e3 * median['bare']:>16.2f}{1.0:>10.3f}   (hand-written loop)")
    print(f"{'none':<18}{1e3 * median['none']:>16.2f}{ratios['trainer_over_bare']:>10.3f}   bare  (goal <= 1.05)")
    for name in methods:
        if name != "none":
            goal = "  (goal <= 1.25)" if name == "moca" else ""
            print(f"{name:<18}{1e3 * median[name]:>16.2f}{ratios[f'{name}_over_none']:>10.3f}   none{goal}")
    print(json.dumps({k: round(v, 4) for k, v in ratios.items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
