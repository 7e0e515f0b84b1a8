"""``fid``: FID and KID of generated samples against a dataset split (Tables 1-5, Figs. 4, 9, 10).

The paper computes FID on the test set with 10,000 samples (docs/paper.md). Here, with
``c = cfg.eval.fid``:

* generated: N = ``c.num_samples`` prior draws z ~ p(z), drawn once at construction from the
  stream ``derive_seed(eval.seed, "fid")`` (every epoch and every run with the same
  ``eval.seed`` decodes the same z), decoded by g, quantised as saved images (clamp, ×255,
  round to uint8);
* reference: the first min(M, |split|) images of ``c.split`` at the data's resolution, M =
  ``c.reference_samples`` (default N; e.g. 5,000 samples against all 10,000 test images); their
  statistics come from the shared cache ``c.cache_dir`` (computed by the first run that needs
  them, see :mod:`harness.metrics.fid`).

With ``c.features`` = ``inception`` (default) the features are pytorch-fid's Inception
network's (``c.dims``); with ``lenet`` they are the 128-d penultimate layer of the domain
classifier trained by the harness and cached under ``data.root``
(:mod:`harness.metrics.lenet`; needs a labelled image dataset, checked at config validation).
The metric keys are the same in both spaces, so a result's feature space is read from its
provenance file: never put values of two feature spaces in one table or curve.

Returns ``fid``, ``kid``, ``kid_std`` (over ``c.kid_subsets`` subsets) and ``fid_n`` (N). The
rest of what the values depend on (feature network name, dims, weights sha256, test accuracy
of the domain network, reference N and split, library versions, cache file) goes to
``<run_dir>/fid_provenance.json``, since metrics.jsonl holds numbers only.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import torch

from harness.atomic import write_json
from harness.errors import ConfigError, require, require_choice
from harness.evaluators._base import EVALUATORS, Evaluator
from harness.metrics import fid as M
from harness.metrics.features import load_feature_net
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


def check_features(cfg, features: str, key: str) -> None:
    """Config-time check shared by the image metrics with a feature network: the domain
    classifier (``lenet``) is trained on class labels, so the dataset must have them."""
    from harness.datasets import dataset_kind

    if features == "lenet" and not dataset_kind(cfg.data.name).class_labels:
        raise ConfigError(key, f"'lenet' is trained on class labels and {cfg.data.name} has none; "
                               "allowed: inception")


@dataclass
class FIDConfig:
    """``eval.fid``: FID / KID settings (see the module docstring and harness/metrics/fid.py)."""

    num_samples: int = 10000  # N generated samples (paper: 10,000)
    reference_samples: int | None = None  # reference images (first M of the split); None = num_samples
    split: str = "test"  # reference split (the paper uses the test set)
    weights: str | None = None  # local pt_inception-2015-12-05-6726825d.pth; None = pytorch-fid's download
    cache_dir: str = "results/.cache/fid"  # reference statistics, shared by every run
    batch_size: int = 200
    kid_subsets: int = 100  # KID: number of subsets (unbiased polynomial-kernel MMD)
    kid_subset_size: int = 1000
    dims: int = 2048  # Inception feature block (pytorch-fid's --dims); 2048 = pool3, the standard FID
    features: str = "inception"  # inception (paper scale) | lenet (domain network, CPU scale; 128-d)

    def check(self, p: str) -> None:
        from harness.metrics.features import FEATURE_NETS

        require_choice(self.features, f"{p}.features", list(FEATURE_NETS))
        require(self.num_samples >= 2, f"{p}.num_samples", self.num_samples, "an integer >= 2")
        require(self.reference_samples is None or self.reference_samples >= 2, f"{p}.reference_samples",
                self.reference_samples, "null or an integer >= 2")
        require(self.dims in (64, 192, 768, 2048), f"{p}.dims", self.dims, "64, 192, 768 or 2048 (pytorch-fid's --dims)")
        require_choice(self.split, f"{p}.split", ["train", "test"])
        require(self.batch_size >= 1, f"{p}.batch_size", self.batch_size, "an integer >= 1")
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
        check_features(cfg, cfg.eval.fid.features, "eval.fid.features")

    def __init__(self, cfg, data, prior, device, run_dir=None):
        super().__init__(cfg, data, prior, device, run_dir)
        c = self.fcfg = cfg.eval.fid
        # fails fast on missing Inception weights; trains the domain network on first use
        self.network = load_feature_net(c.features, cfg, data, device, c.batch_size)
        n_ref = c.num_samples if c.reference_samples is None else c.reference_samples
        ref_images = (data.test_x if c.split == "test" else data.train_x)[:n_ref]
        cache = M.reference_cache_path(c.cache_dir, data.name, c.split, ref_images,
                                       self.network.weights_sha256, self.network.dims)
        self.reference, from_cache = M.reference_statistics(ref_images, self.features, cache,
                                                            self.network.dims)
        self.z = prior.sample(c.num_samples, generator=make_generator(cfg.eval.seed, "fid"))
        self.kid_seed = derive_seed(cfg.eval.seed, "fid", "kid")
        if run_dir is not None:
            write_json(Path(run_dir) / PROVENANCE_FILE, {
                **self.network.provenance(), "caption": self.network.caption(),
                "n_generated": c.num_samples, "n_reference": len(ref_images), "split": c.split,
                "dataset": data.name, "image_shape": list(data.item_shape),
                "weights_are_official": self.network.weights_sha256 == M.FID_WEIGHTS_SHA256,
                "reference_cache": str(cache), "reference_read_from_cache": from_cache,
                "kid_subsets": c.kid_subsets,
                "kid_subset_size": min(c.kid_subset_size, c.num_samples, len(ref_images)),
                "eval_seed": cfg.eval.seed,
                "versions": {**package_versions(), "scipy": metadata.version("scipy")},
            })

    def features(self, images: torch.Tensor):
        return self.network.extract(images)

    def generate(self, model) -> torch.Tensor:
        """The decoded, quantised (uint8) images of the fixed prior draws."""
        return generate_images(model, self.z, self.data.item_shape, self.fcfg.batch_size, self.device)

    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        gen = M.FeatureStats.from_features(self.features(self.generate(model)))
        kid, kid_std, _ = M.kernel_inception_distance(
            gen.features, self.reference.features, self.fcfg.kid_subsets, self.fcfg.kid_subset_size,
            seed=self.kid_seed)
        return {"fid": M.frechet_distance(gen, self.reference), "kid": kid, "kid_std": kid_std,
                "fid_n": len(self.z)}
