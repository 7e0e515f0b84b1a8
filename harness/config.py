"""Typed, validated run configuration.

A run config is a tree of dataclasses (data, model, method, optim, train, eval, seed)
loaded from YAML (``harness.yaml_io``: safe, no aliases, no duplicate keys) and ``--set key=value``
overrides. Everything is
validated before anything runs: unknown keys (with a "did you mean"), wrong types and
out-of-range values raise :class:`ConfigError`, whose message is one line naming the key
and what is allowed. Command-line entry points turn it into exit status 2.

The method block is flat in YAML (``method: {name: moca, weight: 100, tau: 0.1}``): ``name``
and ``weight`` (λ in the paper's loss, Eq. 5) are common to all regularizers, the remaining
keys are validated against the registered regularizer's own ``Config`` dataclass. Datasets,
architectures, priors and evaluators own their settings the same way: ``data``, ``model`` and
``eval`` declare here only the keys every plug-in shares, and each plug-in's ``Config`` adds its
own (:mod:`harness.plugin_settings`). Requirements across sections (an image metric on vector
data, an image size an architecture cannot decode) are each plug-in's ``check_run(cfg)``, run
at validation; what the machine must offer (``train.device: cuda``, memory) is :func:`harness.build.check_machine`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.dotted import set_path  # noqa: F401  (re-exported: --set overrides use it)
from harness.errors import ConfigError, require, require_choice  # noqa: F401  (re-exported)
from harness.plugin_settings import PluginSection, full_section, plugins_of
from harness.registry import suggest
from harness.yaml_io import YAMLInputError, YAMLRefused, load_file, loads


# ---------------------------------------------------------------------------- sections


@dataclass
class DataConfig(PluginSection):
    """Which dataset, where it lives, and how much of it to use (a dataset's own keys, e.g.
    the synthetic task's ``num_points``, are declared in its file)."""

    name: str = "mnist"
    # where datasets are looked for and downloaded to; null = $MOCA_DATA_ROOT, else ./data
    # (harness.datasets.data_root). Where the data lives never changes a run's numbers, so
    # root and download are execution-only (EXECUTION_ONLY: not part of a run's identity).
    root: str | None = None
    download: bool = True  # fetch a missing dataset on first use (torchvision, md5-checked)
    image_size: int | None = None  # resize target; None = the dataset's native size
    train_limit: int | None = None  # use only the first N training items (CPU-scale runs)
    test_limit: int | None = None
    val_size: int = 0  # training items held out as the validation split (model selection); 0 = none
    val_seed: int = 0  # which items: a permutation seeded by this alone (same split for every run)

    def check(self, p: str) -> None:
        from harness.datasets import DATASETS

        require_choice(self.name, f"{p}.name", DATASETS.names())
        for key in ("image_size", "train_limit", "test_limit"):
            v = getattr(self, key)
            require(v is None or v >= 1, f"{p}.{key}", v, "null or an integer >= 1")
        require(self.val_size >= 0, f"{p}.val_size", self.val_size, "an integer >= 0")
        require(self.train_limit is None or self.val_size < self.train_limit, f"{p}.val_size", self.val_size,
                f"an integer below data.train_limit ({self.train_limit}): the rest is trained on")
        require(self.val_seed >= 0, f"{p}.val_seed", self.val_seed, "an integer >= 0")


@dataclass
class ModelConfig(PluginSection):
    """Autoencoder architecture and prior (the prior fixes the latent geometry); an
    architecture's own keys (the MLP's ``hidden``, the conv nets' ``width``) are in its file."""

    arch: str = "small_conv"
    latent_dim: int = 64
    prior: str = "sphere"

    def check(self, p: str) -> None:
        from harness.archs import ARCHS
        from harness.priors import PRIORS

        require_choice(self.arch, f"{p}.arch", ARCHS.names())
        require_choice(self.prior, f"{p}.prior", PRIORS.names())
        require(self.latent_dim >= 1, f"{p}.latent_dim", self.latent_dim, "an integer >= 1")


@dataclass
class MethodConfig:
    """The latent regularizer: its registered name, λ, and its own hyper-parameters."""

    name: str = "moca"
    weight: float = 1.0  # λ, the regularization coefficient of Eq. 5
    params: Any = None  # an instance of the regularizer's Config dataclass

    def check(self, p: str) -> None:
        require(self.weight >= 0 and math.isfinite(self.weight), f"{p}.weight", self.weight, "a finite number >= 0")
        if self.params is not None and hasattr(self.params, "check"):
            self.params.check(p)

    def to_dict(self) -> dict:
        params = plain(self.params) if self.params is not None else {}
        return {"name": self.name, "weight": self.weight, **params}


@dataclass
class OptimConfig:
    """Adam with the paper's step decay (lr times `lr_decay_factor` every N epochs)."""

    lr: float = 1e-3
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    weight_decay: float = 0.0
    lr_decay_every: int | None = None  # epochs between decays; None = constant lr
    lr_decay_factor: float = 0.5  # the paper halves the learning rate
    lr_decay_until: int | None = None  # stop decaying after this epoch (CelebA-HQ: 400)

    def check(self, p: str) -> None:
        require(self.lr > 0, f"{p}.lr", self.lr, "a number > 0")
        require(len(self.betas) == 2 and all(0 <= b < 1 for b in self.betas), f"{p}.betas", self.betas, "two numbers in [0, 1)")
        require(self.weight_decay >= 0, f"{p}.weight_decay", self.weight_decay, "a number >= 0")
        require(self.lr_decay_every is None or self.lr_decay_every >= 1, f"{p}.lr_decay_every", self.lr_decay_every, "null or an integer >= 1")
        require(0 < self.lr_decay_factor <= 1, f"{p}.lr_decay_factor", self.lr_decay_factor, "a number in (0, 1]")
        require(self.lr_decay_until is None or self.lr_decay_until >= 1, f"{p}.lr_decay_until", self.lr_decay_until, "null or an integer >= 1")


# torch.set_num_threads(100000) segfaults; a fixed bound (not the validating machine's core
# count) keeps a sweep validated on a login node valid on its compute nodes
MAX_THREADS = 1024
MAX_EPOCHS = 100_000  # far beyond any study (the paper's longest: 400); a typo's 1e30 is refused


@dataclass
class TrainConfig:
    """Length of training, batch size, device, and the synthetic task's switch."""

    epochs: int = 10
    batch_size: int = 64
    latent_only: bool = False  # drop the reconstruction term (the paper's synthetic task)
    device: str = "auto"  # auto | cpu | cuda
    num_threads: int | None = None  # torch intra-op threads; None = torch's default (<= MAX_THREADS)
    progress: str = "auto"  # auto (a bar only on a terminal) | on | off
    tensorboard: bool = False  # TensorBoard event files in <run dir>/tensorboard (harness/tracking.py)
    # speed on accelerators (README "GPU"); none of these changes anything on CPU by default
    precision: str = "auto"  # auto (bf16 autocast on CUDA, fp32 on CPU) | fp32 | bf16 (also on CPU)
    channels_last: bool | None = None  # NHWC activations; None = on for images on CUDA
    compile: bool = False  # torch.compile the encoder and decoder
    check_every: int | None = None  # steps between host checks for a non-finite loss; None = 1 on CPU, 100 on CUDA
    deterministic: bool = False  # CUDA: deterministic algorithms (bitwise resume), no cudnn autotuning
    sync_bn: bool = True  # several processes (DDP) on CUDA: SyncBatchNorm (BN over the global batch)

    def check(self, p: str) -> None:
        require(1 <= self.epochs <= MAX_EPOCHS, f"{p}.epochs", self.epochs, f"an integer >= 1 and <= {MAX_EPOCHS}")
        require(self.batch_size >= 1, f"{p}.batch_size", self.batch_size, "an integer >= 1")
        require_choice(self.device, f"{p}.device", ["auto", "cpu", "cuda"])
        ok = self.num_threads is None or 1 <= self.num_threads <= MAX_THREADS
        require(ok, f"{p}.num_threads", self.num_threads, f"null or an integer in [1, {MAX_THREADS}]")
        require_choice(self.progress, f"{p}.progress", ["auto", "on", "off"])
        require_choice(self.precision, f"{p}.precision", ["auto", "fp32", "bf16"])
        require(self.check_every is None or self.check_every >= 1, f"{p}.check_every", self.check_every, "null or an integer >= 1")


@dataclass
class EvalConfig(PluginSection):
    """Which evaluation metrics run, and how often (every N epochs and after the last); each
    evaluator's own block (``eval.fid``, ``eval.prdc``, ...) is declared in its file."""

    every: int = 1  # epochs between evaluations; 0 = only after the last epoch
    split: str = "test"  # what the evaluators measure on: test | val (data.val_size items held out of training)
    metrics: list[str] = field(default_factory=list)
    num_samples: int = 1000  # samples / encoded items used by the metrics
    seed: int = 1234  # fixes projections and prior samples across epochs (comparable curves)
    projections: int = 128  # sliced-Wasserstein projections of the latent metrics
    precise_bn: bool = True  # re-estimate batch-norm statistics before each evaluation (harness/precise_bn.py)
    precise_bn_batches: int = 20  # training batches (of train.batch_size) for that

    def check(self, p: str) -> None:
        from harness.evaluators import EVALUATORS

        require(self.every >= 0, f"{p}.every", self.every, "an integer >= 0")
        require_choice(self.split, f"{p}.split", ["test", "val"])
        for i, m in enumerate(self.metrics):
            require_choice(m, f"{p}.metrics[{i}]", EVALUATORS.names())
        require(self.num_samples >= 2, f"{p}.num_samples", self.num_samples, "an integer >= 2")
        require(self.projections >= 1, f"{p}.projections", self.projections, "an integer >= 1")
        require(self.precise_bn_batches >= 1, f"{p}.precise_bn_batches", self.precise_bn_batches, "an integer >= 1")


@dataclass
class RunConfig:
    """Everything that determines one training run."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    method: MethodConfig = field(default_factory=MethodConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    seed: int = 0  # the master seed: every other seed derives from it

    def check(self, p: str = "") -> None:
        """Requirements across sections, once every section is valid on its own: the
        regularizer's and each plug-in's ``check_run`` (dataset, architecture, prior, metrics)."""
        from harness.datasets._base import known_train_items
        from harness.methods import REGULARIZERS

        require(self.seed >= 0, "seed", self.seed, "an integer >= 0")
        require(self.eval.split != "val" or self.data.val_size >= 1, "eval.split", self.eval.split,
                "test, or val together with data.val_size >= 1 (the validation split is held out of training)")
        REGULARIZERS.get(self.method.name).check_run(self)
        for plugin in plugins_of(self):
            check_run = getattr(plugin, "check_run", None)
            if check_run is not None:
                check_run(self)
        items = known_train_items(self.data)
        require(items is None or self.train.batch_size <= items, "train.batch_size", self.train.batch_size,
                f"an integer <= {items}, the training items of this data section")

    def to_dict(self) -> dict:
        out = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, MethodConfig):
                out[f.name] = value.to_dict()
            elif dataclasses.is_dataclass(value):
                out[f.name] = plain(value)
            else:
                out[f.name] = value
        return out

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)


# ---------------------------------------------------------------------------- parsing


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join("null" if a is type(None) else _type_name(a) for a in typing.get_args(tp))
    if origin is list:
        (inner,) = typing.get_args(tp)
        return f"a list of {_type_name(inner)}"
    return {int: "integer", float: "number", bool: "true/false", str: "string"}.get(tp, str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` (ints are accepted for floats)."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, key)
            except ConfigError:
                pass
        raise ConfigError(key, f"got {value!r}; allowed: {_type_name(tp)}")
    if origin is list:
        (inner,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(key, f"got {value!r}; allowed: {_type_name(tp)}")
        return [_coerce(v, inner, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, str) and _looks_like_float(value):
            value = float(value)  # PyYAML (YAML 1.1) reads "1e-3" as a string
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            try:
                value = float(value)
            except OverflowError:  # an integer beyond the float range
                raise ConfigError(key, f"got {value!r}; allowed: a finite number") from None
            if not math.isfinite(value):  # .inf / .nan are never a valid setting
                raise ConfigError(key, f"got {value!r}; allowed: a finite number")
            return value
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Any:
        return value
    raise ConfigError(key, f"got {value!r}; allowed: {_type_name(tp)}")


def plain(obj: Any) -> Any:
    """``dataclasses.asdict`` for config trees (dataclasses, lists, dicts, scalars), several
    times faster: validating a sweep of 10,000 runs calls it tens of thousands of times."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {name: plain(getattr(obj, name)) for name in _field_names(type(obj), all_fields=True)}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    return obj


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # resolving string annotations is slow: once per class


@functools.cache
def _field_names(cls: type, all_fields: bool = False) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls) if all_fields or f.init)


def from_dict(cls: type, data: Any, prefix: str = "") -> Any:
    """Build dataclass ``cls`` from a mapping, strictly: unknown keys and bad types raise."""
    where = prefix or "config"
    if issubclass(cls, PluginSection):
        cls = full_section(cls)  # the section's keys and its plug-ins'
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(prefix, f"expected a mapping of keys, got {data!r}")
    hints = _type_hints(cls)
    names = list(_field_names(cls))
    for key in data:
        if key not in names:
            full = f"{prefix}.{key}" if prefix else str(key)
            raise ConfigError(full, f"unknown key{suggest(key, names)}; allowed in {where}: {', '.join(names)}")
    kwargs = {}
    for name in names:
        if name not in data:
            continue
        full = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = from_dict(tp, data[name], full)
        else:
            kwargs[name] = _coerce(data[name], tp, full)
    obj = cls(**kwargs)
    return obj


def _method_from_dict(data: Any) -> MethodConfig:
    from harness.methods import REGULARIZERS

    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("method", f"expected a mapping of keys, got {data!r}")
    data = dict(data)
    name = data.pop("name", MethodConfig.name)
    require_choice(name, "method.name", REGULARIZERS.names())
    common = {k: data.pop(k) for k in ("weight",) if k in data}
    base = from_dict(MethodConfig, {"name": name, **common}, "method")
    params_cls = REGULARIZERS.get(name).Config
    base.params = from_dict(params_cls, data, "method")
    return base


def _check_tree(obj: Any, prefix: str) -> None:
    if hasattr(obj, "check") and not isinstance(obj, RunConfig):
        obj.check(prefix)
    if isinstance(obj, MethodConfig):
        return
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        if dataclasses.is_dataclass(v):
            _check_tree(v, f"{prefix}.{f.name}" if prefix else f.name)


def config_from_dict(data: Any) -> RunConfig:
    """Build and validate a RunConfig from a plain mapping (e.g. parsed YAML)."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("", f"a run config must be a mapping of sections, got {type(data).__name__}")
    data = dict(data)
    method = _method_from_dict(data.pop("method", None))
    cfg = from_dict(RunConfig, data)
    cfg.method = method
    _check_tree(cfg, "")
    cfg.check()  # cross-section checks run last, when every section is valid
    return cfg


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=value``; the value is parsed as YAML (so 1e-3, true, [1, 2] work)."""
    if "=" not in text:
        raise ConfigError(text, "an override must look like key=value (e.g. method.tau=0.2)")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(text, "an override must look like key=value (e.g. method.tau=0.2)")
    try:
        value = loads(raw) if raw.strip() else ""
    except YAMLRefused as e:  # an alias or duplicate key inside the value
        raise ConfigError(key, str(e)) from None
    except YAMLInputError:  # not YAML: the text itself
        value = raw
    if isinstance(value, str) and _looks_like_float(value):
        value = float(value)  # YAML 1.1 reads "1e-3" as a string
    return key.split("."), value


def _looks_like_float(s: str) -> bool:
    try:
        float(s)
    except ValueError:
        return False
    return s.strip().lower() not in ("nan", "inf", "-inf", "+inf", "infinity", "-infinity")


def apply_overrides(tree: dict, overrides: list[str] | None) -> dict:
    tree = json.loads(json.dumps(tree)) if tree else {}
    for text in overrides or []:
        path, value = parse_override(text)
        set_path(tree, path, value, label=".".join(path))
    return tree


def read_yaml(path: str | Path) -> Any:
    """Parse a YAML file with :mod:`harness.yaml_io` (the harness's only YAML reader); every
    problem (missing, too large, not UTF-8, not YAML, an alias, a duplicate key) is a
    one-line ConfigError naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError("", f"no such config file: {path}", None)
    try:
        return load_file(path)
    except YAMLInputError as e:
        raise ConfigError("", str(e), str(path)) from None


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> RunConfig:
    """Load a YAML run config, apply ``key=value`` overrides, validate; errors name the file."""
    source = str(path) if path else "<defaults>"
    try:
        tree = read_yaml(path) if path else {}
        if tree is None:  # an empty file is a mistake, not "train every default on full MNIST"
            raise ConfigError("", "the config file is empty; allowed: a mapping of sections "
                              "(data, model, method, optim, train, eval, seed)")
        if not isinstance(tree, dict):
            raise ConfigError("", "a run config must be a mapping of sections")
        return config_from_dict(apply_overrides(tree, overrides))
    except ConfigError as e:
        raise e.with_source(e.source or source) from None


def default_tree(method_name: str) -> dict:
    """The config tree of all defaults (no validation) for a run of ``method_name``."""
    return json.loads(json.dumps(_default_tree(method_name)))  # a copy the caller may change


@functools.cache
def _default_tree(method_name: str) -> dict:
    """:func:`default_tree`, built once per method (read-only: shared between callers)."""
    from harness.methods import REGULARIZERS

    tree = RunConfig().to_dict()
    params = REGULARIZERS.get(method_name).Config()
    tree["method"] = MethodConfig(name=method_name, params=params).to_dict()
    return tree


def _diff(tree: Any, default: Any) -> Any:
    """The parts of ``tree`` that differ from ``default`` (mappings are compared key by key)."""
    if isinstance(tree, dict) and isinstance(default, dict):
        out = {}
        for key, value in tree.items():
            if key not in default:
                out[key] = value
            else:
                d = _diff(value, default[key])
                if d is not _SAME:
                    out[key] = d
        return out if out else _SAME
    return _SAME if tree == default else tree


_SAME = object()


# Keys that say *how* or *where* a run executes, never *what* it computes: reset to these
# values before a run's identity is computed or two configs are compared for "same run"
# (a run moved to a machine with its data elsewhere, or watched in TensorBoard, is the same run).
EXECUTION_ONLY: dict[str, dict[str, Any]] = {
    "train": {"num_threads": None, "progress": "auto", "tensorboard": False, "check_every": None},
    "data": {"root": None, "download": True},
}


def without_execution_only(tree: dict) -> dict:
    """A config tree (``RunConfig.to_dict()``) with the :data:`EXECUTION_ONLY` keys reset."""
    out = dict(tree)
    for section, values in EXECUTION_ONLY.items():
        if isinstance(out.get(section), dict):
            out[section] = {**out[section], **{k: v for k, v in values.items() if k in out[section]}}
    return out


def same_run(a: dict, b: dict) -> bool:
    """Whether two config trees describe the same run (execution-only keys ignored)."""
    return without_execution_only(a) == without_execution_only(b)


def config_fingerprint(cfg: RunConfig) -> str:
    """A stable content hash of a resolved config (the run id of the sweep engine).

    Only the values that differ from the defaults enter the hash, so adding a new config
    key with a default to the harness leaves every existing id unchanged. (Changing a
    default is caught when a run resumes: its stored config no longer re-resolves equal.)
    """
    return tree_fingerprint(cfg.to_dict())


def tree_fingerprint(tree: dict) -> str:
    """:func:`config_fingerprint` of a resolved config tree (``RunConfig.to_dict()``)."""
    import hashlib

    name = tree["method"]["name"]
    diff = _diff(tree, _default_tree(name))
    diff = {} if diff is _SAME else diff
    diff.setdefault("method", {})["name"] = name  # defaults are per method
    blob = json.dumps(diff, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_id(cfg: RunConfig, tree: dict | None = None) -> str:
    """The stable id of a run (its folder name in a sweep): :func:`tree_fingerprint` of the
    config with the execution-only fields reset (:data:`EXECUTION_ONLY`), so the same run
    started with another thread count or data folder keeps its id. ``tree``: ``cfg.to_dict()``
    when the caller has it already (a sweep of 10,000 runs resolves each tree once)."""
    return tree_fingerprint(without_execution_only(tree if tree is not None else cfg.to_dict()))
