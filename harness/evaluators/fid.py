"""``fid``: FID and KID of generated samples against a dataset split (Tables 1-5, Figs. 4, 9, 10).

The paper computes FID on the test set with 10,000 samples (docs/paper.md). Here, with
``c = cfg.eval.fid``:

* generated: N = ``c.num_samples`` prior draws z ~ p(z), drawn once at construction from the
  stream ``derive_seed(eval.seed, "fid")`` (every epoch and every run with the same
  ``eval.seed`` decodes the same z), decoded by g, quantised as saved images (clamp, ×255,
  round to uint8);
* reference: the first min(M, |split|) images of ``c.split`` at the data's resolution, M =
  ``c.reference_samples`` (default N; e.g. 5,000 samples against all 10,000 test images); their
  statistics come from the verified, content-addressed cache of the feature-network provider
  (``ctx.features``, :mod:`harness.evaluators.feature_nets`).

``c.features`` names the feature network: ``inception`` (default; pytorch-fid's, ``dims``
features) or ``lenet`` (the 128-d penultimate layer of the domain classifier trained by the
harness; needs a labelled image dataset, checked at config validation). The metric keys are
the same in both spaces; the space (``lenet-128``, ``inception-2048``) is recorded in the
provenance file and becomes the ``fid_features`` column of runs.csv: never put values of two
feature spaces in one table or curve (the figures refuse).

Returns ``fid``, ``kid``, ``kid_std`` (over ``c.kid_subsets`` subsets) and ``fid_n`` (N). The
rest of what the values depend on (feature space, weights sha256, test accuracy of the domain
network, the cache keys, reference N and split, library versions) goes to
``<run_dir>/fid_provenance.json``, since metrics.jsonl holds numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

import torch

from harness.atomic import write_json
from harness.errors import require, require_choice
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.evaluators.feature_nets import FEATURE_NETS, FeatureNetConfig, check_network
from harness.metrics import fid as M
from harness.provenance import package_versions
from harness.seeding import derive_seed, make_generator

PROVENANCE_FILE = "fid_provenance.json"


def generate_images(model, z: torch.Tensor, item_shape, batch_size: int, device) -> torch.Tensor:
    """``model.decoder(z)`` in batches, quantised as saved images (uint8 N×C×H×W, on the CPU)."""
    out = []
    with torch.no_grad():
        for i in range(0, len(z), batch_size):
            x = model.decoder(z[i : i + batch_size].to(device))
            out.append(M.quantize(x.reshape(-1, *item_shape)).cpu())
    return torch.cat(out)


@dataclass
class FIDConfig(FeatureNetConfig):
    """``eval.fid``: FID / KID settings (see the module docstring and harness/metrics/fid.py); the
    feature networks' settings (dims, weights, batch_size, cache_dir) are declared and checked by
    :class:`FeatureNetConfig`, whose keys live in this block."""

    num_samples: int = 10000  # N generated samples (paper: 10,000)
    reference_samples: int | None = None  # reference images (first M of the split); None = num_samples
    split: str = "test"  # reference split (the paper uses the test set)
    kid_subsets: int = 100  # KID: number of subsets (unbiased polynomial-kernel MMD)
    kid_subset_size: int = 1000
    features: str = "inception"  # inception (paper scale) | lenet (domain network, CPU scale; 128-d)

    def check(self, p: str) -> None:
        require_choice(self.features, f"{p}.features", list(FEATURE_NETS))
        require(self.num_samples >= 2, f"{p}.num_samples", self.num_samples, "an integer >= 2")
        require(self.reference_samples is None or self.reference_samples >= 2, f"{p}.reference_samples",
                self.reference_samples, "null or an integer >= 2")
        super().check(p)
        require_choice(self.split, f"{p}.split", ["train", "test"])
        require(self.kid_subsets >= 1, f"{p}.kid_subsets", self.kid_subsets, "an integer >= 1")
        require(self.kid_subset_size >= 2, f"{p}.kid_subset_size", self.kid_subset_size, "an integer >= 2")


@EVALUATORS.register("fid")
class FIDEvaluator(Evaluator):
    Config = FIDConfig
    config_key = "fid"
    logs = ("fid", "fid_*", "kid", "kid_*")
    needs_images = True

    @classmethod
    def check_run(cls, cfg) -> None:
        super().check_run(cfg)
        check_network(cfg, cfg.eval.fid.features, "eval.fid.features")

    @classmethod
    def feature_nets(cls, config) -> list[str]:
        return [config.features]

    def __init__(self, config: FIDConfig, ctx):
        super().__init__(config, ctx)
        c, data = config, ctx.data
        # fails fast on missing Inception weights; trains the domain network on first use
        self.network = ctx.features.get(c.features)
        n_ref = c.num_samples if c.reference_samples is None else c.reference_samples
        ref_images = (data.test_x if c.split == "test" else data.train_x)[:n_ref]
        self.reference, cache = ctx.features.reference(self.network, ref_images, c.split)
        self.z = ctx.prior.sample(c.num_samples, generator=make_generator(ctx.seed, "fid"))
        self.kid_seed = derive_seed(ctx.seed, "fid", "kid")
        if ctx.run_dir is not None:
            write_json(ctx.run_dir / PROVENANCE_FILE, {
                "metrics": ["fid", "kid", "kid_std", "fid_n"], **self.network.provenance(),
                "n_generated": c.num_samples, "n_reference": len(ref_images), "split": c.split,
                "dataset": data.name, "image_shape": list(data.item_shape), **cache,
                "kid_subsets": c.kid_subsets,
                "kid_subset_size": min(c.kid_subset_size, c.num_samples, len(ref_images)),
                "eval_seed": ctx.seed,
                "versions": {**package_versions(), "scipy": metadata.version("scipy")},
            })

    def features(self, images: torch.Tensor):
        return self.network.extract(images)

    def generate(self, model) -> torch.Tensor:
        """The decoded, quantised (uint8) images of the fixed prior draws."""
        return generate_images(model, self.z, self.data.item_shape, self.ctx.features.batch_size(), self.device)

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        gen = M.FeatureStats.from_features(self.features(self.generate(model)))
        kid, kid_std, _ = M.kernel_inception_distance(
            gen.features, self.reference.features, self.config.kid_subsets, self.config.kid_subset_size,
            seed=self.kid_seed)
        return {"fid": M.frechet_distance(gen, self.reference), "kid": kid, "kid_std": kid_std,
                "fid_n": len(self.z)}
