"""``prdc``: precision, recall, density and coverage of generated samples (Kynkäänniemi et al.
2019; Naeem et al. 2020), in the feature space ``eval.prdc.features`` (``inception`` or the
domain network ``lenet``, from the run's feature-network provider
:mod:`harness.evaluators.feature_nets`).

With ``c = cfg.eval.prdc``: N = ``c.num_samples`` prior draws from the stream
``derive_seed(eval.seed, "fid")`` (the same z as the ``fid`` evaluator, so with equal N both
describe the same samples), decoded and quantised as saved images, against the first
min(N, |split|) images of the evaluation split (test, or the validation split with
``eval.split: val``), with ``c.k`` nearest neighbours (Naeem et al. recommend k = 5). The
reference features (cached on disk like FID's reference statistics) and their k-NN radii are
computed once per run. Keys: ``precision``, ``recall``, ``density``, ``coverage``. What they
depend on (feature space, weights sha256, test accuracy, cache keys; k; both N) goes to
``<run_dir>/prdc_provenance.json``: values from two feature spaces, or two k or N, are not
comparable.
"""

from __future__ import annotations

from dataclasses import dataclass

from harness.atomic import write_json
from harness.errors import ConfigError, require, require_choice
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.evaluators.feature_nets import FEATURE_NETS, check_network
from harness.evaluators.fid import generate_images
from harness.metrics.prdc import knn_radii, prdc
from harness.provenance import package_versions
from harness.seeding import make_generator

PROVENANCE_FILE = "prdc_provenance.json"
KEYS = ("precision", "recall", "density", "coverage")


@dataclass
class PRDCConfig:
    """``eval.prdc``: precision/recall (Kynkäänniemi et al. 2019), density/coverage (Naeem et al. 2020)."""

    features: str = "inception"  # feature network: inception | lenet (as eval.fid.features)
    k: int = 5  # nearest neighbours (Naeem et al. recommend 5)
    num_samples: int = 10000  # generated samples, and reference images of the evaluation split

    def check(self, p: str) -> None:
        require_choice(self.features, f"{p}.features", list(FEATURE_NETS))
        require(self.num_samples >= 2, f"{p}.num_samples", self.num_samples, "an integer >= 2")
        require(1 <= self.k < self.num_samples, f"{p}.k", self.k,
                f"an integer from 1 to {self.num_samples - 1} (below {p}.num_samples)")


@EVALUATORS.register("prdc")
class PRDCEvaluator(Evaluator):
    Config = PRDCConfig
    config_key = "prdc"
    logs = ("precision", "recall", "density", "coverage")
    needs_images = True

    @classmethod
    def check_run(cls, cfg) -> None:
        super().check_run(cfg)
        c = cfg.eval.prdc
        check_network(cfg, c.features, "eval.prdc.features")
        limit = cfg.data.val_size if cfg.eval.split == "val" else cfg.data.test_limit
        n = c.num_samples if limit is None else min(c.num_samples, limit)
        if c.k >= n:
            raise ConfigError("eval.prdc.k", f"got {c.k}; allowed: 1 to {n - 1} (fewer than the {n} samples "
                                             "of each set: eval.prdc.num_samples, data.test_limit or data.val_size)")

    @classmethod
    def feature_nets(cls, config) -> list[str]:
        return [config.features]

    def __init__(self, config: PRDCConfig, ctx):
        super().__init__(config, ctx)
        c = config
        self.network = ctx.features.get(c.features)
        ref_images = ctx.data.test_x[: c.num_samples]
        if c.k >= len(ref_images):
            raise ConfigError("eval.prdc.k", f"got {c.k}; allowed: 1 to {len(ref_images) - 1} "
                                             f"(the reference set holds {len(ref_images)} images)")
        self.reference, cache = ctx.features.reference(self.network, ref_images, "eval")
        self.radii = knn_radii(self.reference.features, c.k)
        self.z = ctx.prior.sample(c.num_samples, generator=make_generator(ctx.seed, "fid"))
        if ctx.run_dir is not None:
            write_json(ctx.run_dir / PROVENANCE_FILE, {
                "metrics": list(KEYS), **self.network.provenance(), "k": c.k,
                "n_generated": c.num_samples, "n_reference": len(ref_images), "split": ctx.run.eval.split,
                "dataset": ctx.data.name, "image_shape": list(ctx.data.item_shape), **cache,
                "eval_seed": ctx.seed, "versions": package_versions(),
            })

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        images = generate_images(model, self.z, self.data.item_shape, self.ctx.features.batch_size(), self.device)
        return prdc(self.reference.features, self.network.extract(images), self.config.k, self.radii)
