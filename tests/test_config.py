"""Run configs: parsing, overrides, validation messages and exit status, JSON round trip."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from harness.config import ConfigError, RunConfig, config_from_dict, load_config


def test_defaults_validate_and_round_trip_through_json(tiny_tree):
    cfg = config_from_dict(tiny_tree)
    again = config_from_dict(json.loads(cfg.to_json()))
    assert again.to_dict() == cfg.to_dict()
    assert cfg.method.params.tau == 0.2
    assert isinstance(config_from_dict({}), RunConfig)


def test_every_registered_method_round_trips(tiny_tree):
    from harness.methods import REGULARIZERS

    for name in REGULARIZERS.names():
        tree = dict(tiny_tree, method={"name": name})
        if name == "cwae":
            tree["model"] = dict(tree["model"], prior="gaussian")
        cfg = config_from_dict(tree)
        assert config_from_dict(json.loads(cfg.to_json())).to_dict() == cfg.to_dict()


def test_overrides_parse_yaml_values(tmp_path, tiny_tree):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_tree))
    cfg = load_config(path, ["method.tau=5e-2", "train.latent_only=true", "model.hidden=[16, 16]"])
    assert cfg.method.params.tau == 0.05
    assert cfg.train.latent_only is True
    assert cfg.model.hidden == [16, 16]


BAD = [
    ({"method": {"tau": 0}}, "method.tau", "> 0"),
    ({"method": {"tau": -1.0}}, "method.tau", "> 0"),
    ({"method": {"momentum": 1.5}}, "method.momentum", "[0, 1]"),
    ({"method": {"momentum": -0.1}}, "method.momentum", "[0, 1]"),
    ({"method": {"queue_size": 0}}, "method.queue_size", ">= 1"),
    ({"method": {"weight": -1}}, "method.weight", ">= 0"),
    ({"model": {"latent_dim": 0}}, "model.latent_dim", ">= 1"),
    ({"train": {"batch_size": 0}}, "train.batch_size", ">= 1"),
    ({"train": {"epochs": 0}}, "train.epochs", ">= 1"),
    ({"method": {"name": "mocha"}}, "method.name", "did you mean 'moca'"),
    ({"data": {"name": "mnsit"}}, "data.name", "did you mean 'mnist'"),
    ({"model": {"arch": "mpl"}}, "model.arch", "did you mean 'mlp'"),
    ({"train": {"epocs": 3}}, "train.epocs", "did you mean 'epochs'"),
    ({"method": {"temperature": 0.1}}, "method.temperature", "unknown key"),
    ({"train": {"epochs": "ten"}}, "train.epochs", "allowed: integer"),
    ({"train": {"epochs": 2.5}}, "train.epochs", "allowed: integer"),
    ({"train": {"latent_only": "yes"}}, "train.latent_only", "true/false"),
    ({"optim": {"lr": 0}}, "optim.lr", "> 0"),
    ({"model": {"prior": "gaussian"}}, "model.prior", "moca needs: sphere"),
]


def _merge(base: dict, patch: dict) -> dict:
    out = json.loads(json.dumps(base))
    for section, values in patch.items():
        out.setdefault(section, {}).update(values)
    return out


@pytest.mark.parametrize("patch,key,allowed", BAD, ids=[b[1] + ":" + str(list(b[0].values())[0]) for b in BAD])
def test_bad_values_raise_one_line_naming_the_key(tiny_tree, patch, key, allowed):
    with pytest.raises(ConfigError) as err:
        config_from_dict(_merge(tiny_tree, patch))
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith(key + ":")
    assert allowed in text


@pytest.mark.parametrize("override,key", [
    ("method.tau=0", "method.tau"),
    ("method.momentum=2", "method.momentum"),
    ("method.queue_size=0", "method.queue_size"),
    ("method.weight=-3", "method.weight"),
    ("model.latent_dim=0", "model.latent_dim"),
    ("train.batch_size=0", "train.batch_size"),
    ("train.epochs=0", "train.epochs"),
    ("method.name=nope", "method.name"),
    ("data.name=imagenet", "data.name"),
    ("model.arch=vit", "model.arch"),
    ("train.epochz=1", "train.epochz"),
])
def test_cli_exits_2_with_one_line_and_writes_nothing(tmp_path, tiny_tree, capsys, override, key):
    from harness.train import main

    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_tree))
    out = tmp_path / "out"
    assert main([str(path), "--set", override, "--out", str(out)]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert str(path) in lines[0] and key in lines[0] and "allowed" in lines[0]
    assert not out.exists()


def test_cli_process_exit_status_is_2(tmp_path, tiny_tree):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_tree))
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "harness.train", str(path), "--set", "method.tau=-1",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {path}: method.tau: got -1.0; allowed: a number > 0"
    assert not out.exists()


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [unclosed\n")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("seed: !!python/object/apply:os.system ['echo hacked']\n")
    with pytest.raises(ConfigError):
        load_config(evil)


def test_cwae_needs_the_gaussian_prior_at_validation_time(tiny_tree):
    tiny_tree["method"] = {"name": "cwae"}
    with pytest.raises(ConfigError, match=r"^model.prior: got 'sphere'; allowed: gaussian \(cwae"):
        config_from_dict(tiny_tree)
    tiny_tree["model"].update(prior="gaussian", latent_dim=7)  # the asymptotic formula is far off below 8
    with pytest.raises(ConfigError, match=r"^model.latent_dim: got 7; allowed: an integer >= 8 for cwae"):
        config_from_dict(tiny_tree)
    tiny_tree["model"]["latent_dim"] = 8
    config_from_dict(tiny_tree)
