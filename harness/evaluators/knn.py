"""``knn``: k-nearest-neighbour accuracy of test latents against training latents (``knn_acc``).

The number behind the paper's Fig. 7 claim that MoCA learns class clusters
(:mod:`harness.metrics.knn`): the first ``eval.knn.num_train`` training items and the first
``eval.knn.num_test`` items of the evaluation split (test, or validation with
``eval.split: val``) are encoded and projected onto the prior's support, and each evaluation
latent is classified by a majority vote of its ``eval.knn.k`` nearest training latents.
Needs a dataset with one class label per item (checked at config validation).
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ConfigError, require
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.metrics.knn import knn_accuracy


@dataclass
class KNNConfig:
    """``eval.knn``: k-NN accuracy of evaluation latents against training latents."""

    k: int = 10
    num_train: int = 10000  # first N training items (the neighbours)
    num_test: int = 10000  # first N items of the evaluation split (classified)

    def check(self, p: str) -> None:
        require(self.num_train >= 1, f"{p}.num_train", self.num_train, "an integer >= 1")
        require(self.num_test >= 1, f"{p}.num_test", self.num_test, "an integer >= 1")
        require(1 <= self.k <= self.num_train, f"{p}.k", self.k,
                f"an integer from 1 to {self.num_train} ({p}.num_train)")


@EVALUATORS.register("knn")
class KNNEvaluator(Evaluator):
    Config = KNNConfig
    config_key = "knn"
    logs = ("knn_acc",)

    @classmethod
    def check_run(cls, cfg) -> None:
        from harness.datasets import dataset_kind

        if not dataset_kind(cfg.data.name).class_labels:
            raise ConfigError("eval.metrics", f"'knn' needs a dataset with class labels; {cfg.data.name} has none")
        c = cfg.eval.knn
        limit = cfg.data.train_limit - cfg.data.val_size if cfg.data.train_limit is not None else None
        n = min(c.num_train, limit) if limit is not None else c.num_train
        if c.k > n:
            raise ConfigError("eval.knn.k", f"got {c.k}; allowed: 1 to {n} (the training latents: "
                                            "eval.knn.num_train, data.train_limit)")

    def __init__(self, config: KNNConfig, ctx):
        super().__init__(config, ctx)
        c, data = config, ctx.data
        if data.train_y is None or data.train_y.dim() != 1:
            raise ConfigError("eval.metrics", f"'knn' needs a dataset with class labels; {data.name} has none")
        self.train_x, self.train_y = data.train_x[: c.num_train], data.train_y[: c.num_train]
        self.test_x, self.test_y = data.test_x[: c.num_test], data.test_y[: c.num_test]
        if c.k > len(self.train_x):
            raise ConfigError("eval.knn.k", f"got {c.k}; allowed: 1 to {len(self.train_x)} (the training latents)")

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        z_train, z_test = self.encode(model, self.train_x), self.encode(model, self.test_x)
        return {"knn_acc": knn_accuracy(z_train, self.train_y, z_test, self.test_y, self.config.k)}
