"""The evaluator interface and registry.

An evaluator is one file: its class, registered with ``@EVALUATORS.register(name)``, and its
settings, a ``Config`` dataclass that becomes the block ``eval.<config_key>`` of every run config
(:mod:`harness.plugin_settings`). Requirements on the rest of the run (an image dataset, class
labels) are its ``check_run(cfg)``, called at validation, before anything starts.

Constructed as ``E(config, ctx)``, like a regularizer: ``config`` is its own settings block
(None without one) and ``ctx`` an :class:`EvalContext` with everything else it may use.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from harness.errors import ConfigError
from harness.registry import Registry

EVALUATORS: Registry = Registry("metric", package="harness.evaluators")


@dataclass
class EvalContext:
    """What an evaluator may use besides its own settings (built once per run by
    :func:`make_context`, shared by the run's evaluators)."""

    run: Any  # the RunConfig, read-only: the shared eval keys (cfg.eval.split, ...) and titles
    data: Any  # the DataBundle as evaluated (eval.split: val puts the validation items in test_x)
    prior: Any
    device: torch.device
    run_dir: Path | None  # where artifacts and provenance files go; None = do not write
    seed: int  # eval.seed: every evaluator derives its random streams from it
    features: Any  # harness.evaluators.feature_nets.FeatureNetworks: the feature-network provider


def make_context(cfg, data, prior, device, run_dir=None) -> EvalContext:
    """The evaluation context of a run; ``data`` is the run's bundle (its evaluation view is
    taken here, :meth:`DataBundle.evaluation_view`)."""
    from harness.evaluators.feature_nets import FeatureNetworks

    data = data.evaluation_view(cfg.eval.split)
    return EvalContext(cfg, data, prior, torch.device(device), Path(run_dir) if run_dir is not None else None,
                       cfg.eval.seed, FeatureNetworks(cfg, data, device))


class Evaluator(ABC):
    """Computes one group of metrics on a trained-so-far model.

    ``Config`` / ``config_key``: the evaluator's own settings and the name of their block under
    ``eval:`` (none by default). ``needs_images``: refused at validation for a vector dataset.
    What its values depend on beyond the config goes to ``<name>_provenance.json`` in the run
    folder, listing the metric keys it covers (``"metrics"``) and, for values measured in a
    feature space, that space (:meth:`harness.evaluators.feature_nets.FeatureNet.provenance`),
    which runs.csv turns into ``<name>_features`` (:func:`harness.run_folder.feature_spaces`).
    ``logs``: the metric keys it returns, as shell patterns (``image_swd_*``), so that a sweep
    that selects on a metric no run will log is refused before anything trains.
    """

    Config: type | None = None
    config_key: str = ""
    needs_images: bool = False
    logs: tuple[str, ...] = ()

    def __init__(self, config, ctx: EvalContext):
        data = ctx.data
        if self.needs_images and not data.is_image:  # the guard behind check_run for direct construction
            raise ConfigError("eval.metrics", f"'{self.registered_name()}' needs an image dataset; {data.name} "
                                              "holds vectors")
        self.config, self.ctx = config, ctx
        self.data, self.prior, self.device = data, ctx.prior, ctx.device
        self.run_dir = ctx.run_dir  # where artifacts (images, plots) go; None = do not write

    @classmethod
    def feature_nets(cls, config) -> list[str]:
        """The feature networks this evaluator uses under its settings ``config`` (none by
        default; a metric in a feature space returns the one it names)."""
        return []

    @classmethod
    def registered_name(cls) -> str:
        """The name this evaluator is registered under (what ``eval.metrics`` lists)."""
        return next(n for n in EVALUATORS.names() if EVALUATORS.get(n) is cls)

    @classmethod
    def check_run(cls, cfg) -> None:
        """Requirements on the rest of the run config, checked during config validation,
        before anything starts; raise ``ConfigError`` (one line). The base checks
        ``needs_images``; an override adds its own checks after ``super().check_run(cfg)``."""
        if cls.needs_images:
            from harness.datasets import dataset_kind

            if not dataset_kind(cfg.data.name).image:
                raise ConfigError("eval.metrics", f"'{cls.registered_name()}' needs an image dataset; {cfg.data.name} "
                                                  "holds vectors")

    @abstractmethod
    def __call__(self, model, epoch: int, final: bool = False) -> dict[str, float]:
        """Metrics of ``model`` after ``epoch`` epochs (``final``: after the last one)."""

    def take_images(self) -> dict:
        """Image grids (name -> H×W×3 uint8 array) made by the last call, for the run's
        trackers (harness/tracking.py); cleared when taken. None by default."""
        return {}

    def encode(self, model, x: torch.Tensor, batch_size: int = 500) -> torch.Tensor:
        """Latents (on the prior's support) of the items ``x``, in batches, no gradients."""
        out = []
        with torch.no_grad():
            for i in range(0, len(x), batch_size):
                xb = self.data.to_float(x[i : i + batch_size]).to(self.device)
                out.append(latent_map(model, self.prior)(model.encoder(xb)).cpu())
        return torch.cat(out)


def logged_metrics(cfg) -> list[str]:
    """The metric keys (shell patterns) the evaluators of ``cfg.eval.metrics`` log (the training
    loop's are :data:`harness.run_folder.TRAINING_METRICS`)."""
    out: list[str] = []
    for name in cfg.eval.metrics:
        out += [k for k in EVALUATORS.get(name).logs if k not in out]
    return out


def latent_map(model, prior):
    """How raw encoder outputs become decoder latents: the method's map when the trainer set
    one (``model.latent_map``, e.g. the S-VAE's mean direction), else the prior's projection."""
    return getattr(model, "latent_map", None) or prior.project


def build_evaluator(name: str, ctx: EvalContext) -> Evaluator:
    """Evaluator ``name`` with its own settings block of ``ctx.run`` and the context."""
    cls = EVALUATORS.get(name)
    return cls(getattr(ctx.run.eval, cls.config_key) if cls.config_key else None, ctx)


def build_evaluators(cfg, data, prior, device, run_dir=None) -> list[Evaluator]:
    """The evaluators of ``cfg.eval.metrics``, sharing one context (:func:`make_context`); with
    ``eval.split: val`` they see the validation split in place of the test split."""
    ctx = make_context(cfg, data, prior, device, run_dir)
    return [build_evaluator(name, ctx) for name in cfg.eval.metrics]


def needed(cfg) -> list[str]:
    """The feature networks the metrics of ``cfg`` use (each evaluator's ``feature_nets``)."""
    out: list[str] = []
    for metric in dict.fromkeys(cfg.eval.metrics):
        evaluator = EVALUATORS.get(metric)
        own = getattr(cfg.eval, evaluator.config_key) if evaluator.config_key else None
        out += [n for n in evaluator.feature_nets(own) if n not in out]
    return out


def prepare_feature_nets(cfg, data=None, notice=None) -> list:
    """Every feature network the run config ``cfg`` needs, loaded, or trained and cached when
    absent (on the CPU): what a sweep calls once before its runs start."""
    from harness.evaluators.feature_nets import load_or_train_feature_net

    kwargs = {"notice": notice} if notice is not None else {}
    return [load_or_train_feature_net(name, cfg, data, "cpu", **kwargs) for name in needed(cfg)]
