"""The shape of the code base (issue 7, items 2 and 3): plug-ins that own their settings,
requirements across sections and of the machine checked at validation, one executor
interface, one definition of a run's id. (The import walk and the run ids of committed
results are tested in tests/test_run_folder.py.)"""

from __future__ import annotations

import dataclasses
import inspect
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from harness.config import ConfigError, config_from_dict

ROOT = Path(__file__).resolve().parents[1]

# every key a plug-in owns, by YAML section: they were keys of harness/config.py's sections
PLUGIN_KEYS = {
    "data": {"num_points": "harness.datasets.synthetic", "input_dim": "harness.datasets.synthetic"},
    "model": {"hidden": "harness.archs.mlp", "decoder_hidden": "harness.archs.mlp", "width": "harness.archs._blocks"},
    "eval": {"fid": "harness.evaluators.fid", "prdc": "harness.evaluators.prdc", "knn": "harness.evaluators.knn",
             "swd": "harness.evaluators.image_swd", "artifacts": "harness.evaluators.artifacts"},
}


# ---------------------------------------------------------------------------- item 2: settings


def test_each_plugin_owns_its_settings():
    """A dataset's, architecture's or evaluator's keys are declared and checked in its own file;
    harness/config.py declares only the keys common to a section. The YAML keys did not move."""
    from harness import config
    from harness.archs import ARCHS
    from harness.datasets import DATASETS
    from harness.evaluators import EVALUATORS

    text = (ROOT / "harness" / "config.py").read_text()
    for cls in ("FIDConfig", "PRDCConfig", "KNNConfig", "ImageSWDConfig", "ArtifactsConfig"):
        assert f"class {cls}" not in text, cls
    sections = {"data": config.DataConfig, "model": config.ModelConfig, "eval": config.EvalConfig}
    for section, keys in PLUGIN_KEYS.items():
        own = {f.name for f in dataclasses.fields(sections[section])}  # without the plug-ins'
        assert own.isdisjoint(keys), section
    owners = {"data": [DATASETS.get("synthetic").Config],
              "model": [ARCHS.get("mlp").Config, ARCHS.get("small_conv").Config],
              "eval": [EVALUATORS.get(n).Config for n in ("fid", "prdc", "knn", "image_swd", "artifacts")]}
    for section, keys in PLUGIN_KEYS.items():
        declared = {}
        for owner in owners[section]:
            if section == "eval":
                key = next(n for n in EVALUATORS.names() if EVALUATORS.get(n).Config is owner)
                declared[EVALUATORS.get(key).config_key] = owner.__module__
            else:
                declared.update({f.name: owner.__module__ for f in dataclasses.fields(owner)})
        assert declared == keys, section
    # every conv architecture shares the one width key
    assert {ARCHS.get(a).Config for a in ("small_conv", "a1", "a2", "resnet_hq")} == {ARCHS.get("a1").Config}

    cfg = config_from_dict({"data": {"name": "synthetic", "num_points": 50, "input_dim": 7, "train_limit": 40},
                            "train": {"batch_size": 32},
                            "model": {"arch": "mlp", "hidden": [9], "width": 3},
                            "eval": {"fid": {"num_samples": 20}, "swd": {"mode": "swd_pytorch"},
                                     "knn": {"k": 3}, "prdc": {"k": 2}}})
    assert (cfg.data.num_points, cfg.data.input_dim, cfg.model.hidden, cfg.model.width) == (50, 7, [9], 3)
    tree = cfg.to_dict()
    assert tree["eval"]["fid"]["num_samples"] == 20 and tree["eval"]["knn"]["k"] == 3
    assert set(PLUGIN_KEYS["data"]) <= set(tree["data"]) and set(PLUGIN_KEYS["model"]) <= set(tree["model"])
    assert set(PLUGIN_KEYS["eval"]) <= set(tree["eval"])
    # checked by the owner's own check, named by the YAML key
    for bad, message in [({"data": {"name": "synthetic", "num_points": 1}}, r"^data\.num_points: got 1"),
                         ({"model": {"width": 0}}, r"^model\.width: got 0"),
                         ({"model": {"hidden": [0]}}, r"^model\.hidden: got \[0\]"),
                         ({"eval": {"knn": {"num_test": 0}}}, r"^eval\.knn\.num_test: got 0")]:
        with pytest.raises(ConfigError, match=message):
            config_from_dict(bad)


def test_adding_a_plugin_with_settings_is_one_registration():
    """A dataset and an evaluator registered with their own Config gain their keys (under
    data: and eval.<config_key>:, validated by their own check) and their check_run, with no
    edit to harness/config.py."""
    from harness.datasets import DATASETS, DatasetKind
    from harness.errors import require
    from harness.evaluators import EVALUATORS, Evaluator

    @dataclass
    class RingsConfig:
        rings: int = 3

        def check(self, p):
            require(self.rings >= 1, f"{p}.rings", self.rings, "an integer >= 1")

    def check_rings(cfg):
        require(cfg.data.rings <= cfg.model.latent_dim, "data.rings", cfg.data.rings, "at most model.latent_dim")

    def load_rings(data_cfg, seed):  # pragma: no cover - never loaded here
        raise AssertionError

    @dataclass
    class CountConfig:
        top: int = 5

        def check(self, p):
            require(self.top >= 1, f"{p}.top", self.top, "an integer >= 1")

    class Count(Evaluator):  # pragma: no cover - never run here
        Config = CountConfig
        config_key = "count"

        def __call__(self, model, epoch, final=False):
            return {}

    DATASETS.register("rings_test", Config=RingsConfig, check_run=check_rings,
                      kind=DatasetKind(image=False, class_labels=False, shape=lambda c: (2,)))(load_rings)
    EVALUATORS.register("count_test")(Count)
    try:
        cfg = config_from_dict({"data": {"name": "rings_test", "rings": 5}, "model": {"arch": "mlp"},
                                "eval": {"metrics": ["count_test"], "count": {"top": 2}}})
        assert (cfg.data.rings, cfg.eval.count.top) == (5, 2)
        with pytest.raises(ConfigError, match=r"^data\.rings: got 0; allowed: an integer >= 1$"):
            config_from_dict({"data": {"name": "rings_test", "rings": 0}, "model": {"arch": "mlp"}})
        with pytest.raises(ConfigError, match=r"^eval\.count\.top: got 0; allowed: an integer >= 1$"):
            config_from_dict({"eval": {"count": {"top": 0}}})
        with pytest.raises(ConfigError, match=r"^data\.rings: got 99; allowed: at most model\.latent_dim$"):
            config_from_dict({"data": {"name": "rings_test", "rings": 99}, "model": {"arch": "mlp"}})
        with pytest.raises(ConfigError, match=r"^model\.arch: got 'small_conv' for input shape \(2,\)"):
            config_from_dict({"data": {"name": "rings_test"}, "model": {"arch": "small_conv"}})
    finally:
        DATASETS._items.pop("rings_test")
        EVALUATORS._items.pop("count_test")
    with pytest.raises(ConfigError, match="unknown key"):
        config_from_dict({"data": {"rings": 5}})


# ---------------------------------------------------------------------------- item 2: validation


VECTORS = {"data": {"name": "synthetic", "num_points": 64}, "model": {"arch": "mlp", "latent_dim": 4},
           "train": {"epochs": 1}}
CROSS_SECTION = [
    ("image metric on vectors", {**VECTORS, "eval": {"metrics": ["latent", "image_swd"]}},
     "eval.metrics: 'image_swd' needs an image dataset; synthetic holds vectors"),
    ("fid on vectors", {**VECTORS, "eval": {"metrics": ["fid"]}},
     "eval.metrics: 'fid' needs an image dataset; synthetic holds vectors"),
    ("A1 image size", {"data": {"name": "digits", "image_size": 30}, "model": {"arch": "a1"}},
     "model.arch: got 'a1' for image side 30; allowed: sides divisible by 4"),
    ("conv arch on vectors", {**VECTORS, "model": {"arch": "small_conv"}},
     "model.arch: got 'small_conv' for input shape (100,); allowed: square images"),
]


@pytest.mark.parametrize("tree, expected", [c[1:] for c in CROSS_SECTION], ids=[c[0] for c in CROSS_SECTION])
def test_cross_section_requirements_fail_at_validation(tmp_path, capsys, tree, expected):
    """Before anything starts: one line naming the file, the key and what is allowed, exit 2,
    no run folder written (these used to fail inside the run, after its folder was made)."""
    from harness.train import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tree))
    out = tmp_path / "run"
    assert main([str(path), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: {expected}"), err
    assert not out.exists()


def test_a1_accepts_the_sides_it_can_decode():
    config_from_dict({"data": {"name": "mnist", "image_size": 32}, "model": {"arch": "a1"}})
    config_from_dict({"data": {"name": "mnist"}, "model": {"arch": "a1"}})  # 28


@pytest.fixture
def no_cuda(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


CUDA_LINE = "train.device: got 'cuda', but this machine has no usable CUDA device; allowed here: auto, cpu"


def test_cuda_on_a_machine_without_one_is_one_line_exit_2_for_train(tmp_path, capsys, no_cuda):
    from harness.train import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump({**VECTORS, "train": {"device": "cuda", "epochs": 1}}))
    out = tmp_path / "run"
    assert main([str(path), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {path}: {CUDA_LINE}\n"
    assert not out.exists()


def test_cuda_on_a_machine_without_one_is_one_line_exit_2_for_a_sweep(tmp_path, capsys, no_cuda):
    from harness.sweep.__main__ import main

    (tmp_path / "pyproject.toml").touch()
    path = tmp_path / "cuda.yaml"
    path.write_text(yaml.safe_dump({"name": "cuda", "base": {**VECTORS, "train": {"device": "cuda", "epochs": 1}},
                                    "grid": {"seed": [0, 1]}}))
    results = tmp_path / "results"
    for executor in ("local", "debug"):
        assert main([str(path), "--results", str(results), "--executor", executor]) == 2
        assert capsys.readouterr().err == f"{path}: {CUDA_LINE}\n"
        assert not results.exists()
    assert main([str(path), "--results", str(results), "--dry-run"]) == 0  # planning needs no GPU


# ---------------------------------------------------------------------------- item 3


def test_executors_share_one_interface():
    from harness.sweep import executors

    base = inspect.signature(executors.Executor.run)
    names = []
    for cls in (executors.LocalExecutor, executors.SlurmExecutor, executors.DebugExecutor):
        assert issubclass(cls, executors.Executor)
        assert inspect.signature(cls.run) == base, cls
        names.append(cls.name)
    assert names == executors.EXECUTORS
    with pytest.raises(TypeError):
        executors.Executor()  # abstract


def test_one_definition_of_a_run_id():
    from harness import config
    from harness.sweep import identity, spec

    assert identity.run_id is config.run_id and spec.run_id is config.run_id
    cfg = config_from_dict(VECTORS)
    moved = config_from_dict({**VECTORS, "train": {"epochs": 1, "num_threads": 3},
                              "data": {**VECTORS["data"], "root": "/elsewhere"}})
    assert config.run_id(moved) == config.run_id(cfg) == config.run_id(cfg, cfg.to_dict())
