"""Bad sweep files and command lines: exit status 2, one line naming the file and the key,
nothing written (the results folder is never created)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from harness.sweep.__main__ import main


def _moca_free(tree: dict) -> dict:
    tree = copy.deepcopy(tree)
    tree["method"] = {"weight": 1.0}
    return tree


# (change to a valid sweep document, extra --set arguments, expected text after "<file>: ")
CASES = [
    ("empty grid", {"grid": {}}, [], "grid: empty; allowed: at least one key"),
    ("empty values", {"grid": {"seed": []}}, [], "grid seed: got []; allowed: a non-empty list of values"),
    ("unknown key", {"grid": {"method.tua": [0.1]}}, [],
     "grid method.tua: unknown key (did you mean 'tau'?)"),
    ("unknown section", {"grid": {"trian.epochs": [1]}}, [], "grid trian: unknown key (did you mean 'train'?)"),
    ("wrong type", {"grid": {"train.epochs": ["two"]}}, [], "grid train.epochs: got 'two'; allowed: integer"),
    ("out of range", {"grid": {"method.tau": [0.1, -1.0]}}, [], "grid method.tau: got -1.0; allowed: a number > 0"),
    ("bad choice", {"grid": {"model.arch": ["mpl"]}}, [], "grid model.arch: got 'mpl' (did you mean 'mlp'?)"),
    ("not a list", {"grid": {"seed": 3}}, [], "grid seed: got 3; allowed: a non-empty list of values"),
    ("bad key text", {"grid": {"seed..x": [1]}}, [], "grid seed..x: not a config key"),
    ("unknown top-level", {"gird": {"seed": [0]}}, [], "gird: unknown key (did you mean 'grid'?)"),
    ("name escapes", {"name": "../evil"}, [], "name: got '../evil'; allowed: 1-64 characters"),
    ("name absolute", {"name": "/tmp/evil"}, [], "name: got '/tmp/evil'"),
    ("name missing", {"name": None}, [], "name: got None"),
    ("paired lengths", {"grid": {"seed": [0]}, "paired": [{"method.weight": [0, 1], "method.tau": [0.1]}]}, [],
     "paired[0]: lists of different lengths (method.weight: 2, method.tau: 1); allowed: equal lengths"),
    ("paired bad value", {"paired": [{"method.weight": [0, 1], "method.momentum": [0.5, 2.0]}]}, [],
     "paired[0] method.momentum: got 2.0; allowed: a number in [0, 1]"),
    ("case bad value", {"cases": [{"optim.lr": 0.1}, {"train.batch_size": 0}]}, [],
     "cases[1] train.batch_size: got 0; allowed: an integer >= 1"),
    ("key in two axes", {"paired": [{"seed": [5, 6], "method.tau": [0.1, 0.2]}]}, [],
     "paired[0] seed: also varied by grid seed"),
    ("key in a case and the grid", {"cases": [{"optim.lr": 0.1}, {"seed": 3}]}, [],
     "cases[1] seed: also varied by grid seed"),
    ("duplicate runs", {"grid": {"seed": [0, 0]}}, [], "grid: runs 'seed=0' and 'seed=0' have the same config"),
    ("per_method unknown method", {"per_method": {"mocha": {"method.tau": 0.1}}}, [],
     "per_method mocha: unknown method (did you mean 'moca'?)"),
    ("per_method bad key", {"grid": {"method.name": ["moca", "mmd"]}, "per_method": {"mmd": {"method.tau": 0.1}}}, [],
     "per_method.mmd method.tau: unknown key"),
    ("per_method sets the name", {"per_method": {"moca": {"method.name": "mmd"}}}, [],
     "per_method.moca method.name: the method is chosen by the key of per_method"),
    ("base carries a method key", {"grid": {"method.name": ["moca", "mmd"]}, "base": "moca"}, [],
     "base method.tau: unknown key"),
    ("set bad value", {}, ["train.epochs=0"], "--set train.epochs: got 0; allowed: an integer >= 1"),
    ("set varied key", {}, ["seed=4"], "--set seed: also set by grid seed (which wins)"),
    ("set not key=value", {}, ["seed"], "--set: an override must look like key=value"),
    ("slurm unknown key", {"slurm": {"partion": "gpu"}}, [], "slurm.partion: unknown key (did you mean 'partition'?)"),
    ("slurm bad time", {}, ["slurm.time=0"], "--set slurm.time: got 0; allowed: an integer >= 1 (minutes)"),
    ("slurm extra not allowed", {"slurm": {"extra": {"acount": "x"}}}, [],
     "slurm.extra.acount: got 'acount' (did you mean 'account'?)"),
    ("slurm extra injection", {"slurm": {"extra": {"comment": "x\n#SBATCH --uid=0"}}}, [],
     "slurm.extra.comment: got 'x\\n#SBATCH --uid=0'; allowed: 1-200 characters"),
    ("base_config escapes", {"base": None, "base_config": "../../../etc/passwd"}, [],
     "base_config: got '../../../etc/passwd'; allowed: a file inside the project"),
    ("base_config missing", {"base": None, "base_config": "nope.yaml"}, [], "base_config: nope.yaml: no such config file"),
]


@pytest.mark.parametrize("change, sets, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_sweep_exits_2_with_one_line_and_writes_nothing(tmp_path, capsys, tiny_tree, change, sets, expected):
    (tmp_path / "pyproject.toml").touch()
    (tmp_path / "sweeps").mkdir()
    doc = {"name": "bad", "base": _moca_free(tiny_tree), "grid": {"seed": [0, 1]}}
    for key, value in change.items():
        if value is None and key in ("base",):
            doc.pop(key)
        elif key == "base" and value == "moca":
            doc["base"] = copy.deepcopy(tiny_tree)  # keeps method.tau etc. of moca
        else:
            doc[key] = value
    path = tmp_path / "sweeps" / "bad.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    results = tmp_path / "results"
    args = [str(path), "--results", str(results)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert err.startswith(f"{path}: {expected}"), err
    assert not results.exists()


def test_unreadable_yaml_and_non_mapping(tmp_path, capsys):
    path = tmp_path / "x.yaml"
    path.write_text("name: [unclosed\n")
    assert main([str(path), "--results", str(tmp_path / "r")]) == 2
    assert capsys.readouterr().err == f"{path}: not valid YAML (line 2: expected ',' or ']', but got '<stream end>')\n"
    path.write_text("- 1\n- 2\n")
    assert main([str(path), "--results", str(tmp_path / "r")]) == 2
    assert "a sweep file must be a mapping" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.yaml")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_results_folder_that_is_a_link_outside_the_root_is_refused(tmp_path, capsys, tiny_tree):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    results = tmp_path / "results"
    results.mkdir()
    (results / "linked").symlink_to(outside)
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "linked", "base": tiny_tree, "grid": {"seed": [0]}}))
    assert main([str(path), "--results", str(results)]) == 2
    assert "is outside" in capsys.readouterr().err
    assert list(outside.iterdir()) == []


@pytest.mark.slow  # a fresh interpreter imports torch and every plug-in (5-10 s)
def test_cli_exit_status_in_a_subprocess(tmp_path, tiny_tree):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": tiny_tree, "grid": {"method.tau": [-1.0]}}))
    proc = subprocess.run([sys.executable, "-m", "harness.sweep", str(path), "--results", str(tmp_path / "r")],
                          capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 2
    assert proc.stderr == f"{path}: grid method.tau: got -1.0; allowed: a number > 0\n"
    assert not (tmp_path / "r").exists()


def test_folder_holding_another_config_is_refused_before_anything_is_written(tmp_path, capsys, tiny_tree):
    from harness.sweep import load_sweep

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": tiny_tree, "grid": {"seed": [0, 1]}}))
    first, second = load_sweep(path).runs
    folder = tmp_path / "results" / "s"
    (folder / second.id).mkdir(parents=True)
    (folder / second.id / "config.json").write_text(json.dumps(dict(tiny_tree, seed=7)))
    assert main([str(path), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"{second.id}/config.json: holds another config than run 'seed=1'" in err
    assert sorted(p.name for p in folder.iterdir()) == [second.id]  # no manifest, no other run
