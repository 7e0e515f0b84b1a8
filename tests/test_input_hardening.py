"""Hostile or broken inputs to harness.train and harness.sweep: one line, exit 2, nothing written.

Each case here once got a traceback, a hang, or silently did something else (issue 7, item 8).
"""

from __future__ import annotations

import os

import pytest
import yaml

from harness.config import MAX_THREADS, ConfigError, load_config
from harness.yaml_io import MAX_BYTES, YAMLInputError, YAMLRefused, load_file, loads


def laughs(levels: int = 6) -> str:
    """A "billion laughs" document: 9**levels strings from a few hundred bytes (small here,
    so that a regression fails the test instead of exhausting memory)."""
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- the YAML reader


def test_aliases_are_refused_and_anchors_alone_pass():
    with pytest.raises(YAMLRefused, match=r"^line 2: YAML alias \*a0 refused"):
        loads(laughs())
    assert loads("a: &x 1\nb: 2\n") == {"a": 1, "b": 2}


def test_duplicate_keys_name_the_key_and_both_lines():
    with pytest.raises(YAMLRefused, match=r"^line 4: duplicate key 'grid' \(first at line 1\)"):
        loads("grid:\n  seed: [0]\nname: x\ngrid:\n  method.tau: [0.1]\n")
    with pytest.raises(YAMLRefused, match="duplicate key 'lr'"):
        loads("optim: {lr: 0.1, lr: 0.2}\n")  # also inside flow mappings
    assert loads("a: {x: 1}\nb: {x: 2}\n") == {"a": {"x": 1}, "b": {"x": 2}}  # same key, two mappings


def test_size_encoding_and_nesting_limits(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("#" * (MAX_BYTES + 1))
    with pytest.raises(YAMLRefused, match="allowed: a YAML file of at most"):
        load_file(big)
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"seed: 1\n\xff\xfe\x00\x81garbage")
    with pytest.raises(YAMLInputError, match=r"^not a UTF-8 text file \(byte 8\)"):
        load_file(binary)
    with pytest.raises(YAMLInputError):
        loads("[" * 50_000)  # recursion inside the parser, not a RecursionError traceback


# --------------------------------------------------------------------------- harness.train


def _train(tmp_path, text: str | bytes, capsys, *sets: str) -> str:
    from harness.train import main

    path = tmp_path / "run.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    out = tmp_path / "out"
    args = [str(path), "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {path}: "), err
    assert not out.exists()
    return err


def test_train_refuses_an_alias_bomb(tmp_path, capsys):
    assert "YAML alias *a0 refused" in _train(tmp_path, laughs(), capsys)


def test_train_refuses_duplicate_keys(tmp_path, capsys, tiny_tree):
    text = yaml.safe_dump(tiny_tree) + "seed: 3\n"
    assert "duplicate key 'seed'" in _train(tmp_path, text, capsys)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_train_refuses_an_empty_config(tmp_path, capsys, text):
    assert "the config file is empty" in _train(tmp_path, text, capsys)


def test_train_refuses_binary_garbage_in_one_line(tmp_path, capsys):
    garbage = bytes(range(256)) * 4
    assert "not a UTF-8 text file" in _train(tmp_path, garbage, capsys)
    assert "not valid YAML" in _train(tmp_path, b"seed: \x01\x02\x03\n", capsys)  # UTF-8 control chars


@pytest.mark.parametrize("key, value", [("optim.lr", ".inf"), ("optim.lr", "-.inf"), ("optim.lr", ".nan"),
                                        ("method.weight", ".inf"), ("method.tau", ".nan"),
                                        ("optim.lr_decay_factor", ".nan"), ("method.momentum", ".nan")])
def test_non_finite_numbers_are_refused_everywhere(tmp_path, capsys, tiny_tree, key, value):
    text = yaml.safe_dump(tiny_tree)
    err = _train(tmp_path, text, capsys, f"{key}={value}")
    assert f"{key}: got " in err and "allowed: a finite number" in err
    section, name = key.split(".")
    tiny_tree[section][name] = float(value.replace(".", "", 1))
    err = _train(tmp_path, yaml.safe_dump(tiny_tree), capsys)  # in the file too
    assert f"{key}: got " in err and "allowed: a finite number" in err


def test_huge_integer_for_a_float_is_refused(tiny_tree, tmp_path):
    tiny_tree["optim"]["lr"] = 10**400
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(tiny_tree))
    with pytest.raises(ConfigError, match="optim.lr: got 1000.*; allowed: a finite number"):
        load_config(path)


def test_thread_count_is_capped(tmp_path, capsys, tiny_tree):
    err = _train(tmp_path, yaml.safe_dump(tiny_tree), capsys, "train.num_threads=100000")
    assert f"train.num_threads: got 100000; allowed: null or an integer in [1, {MAX_THREADS}]" in err
    path = tmp_path / "ok.yaml"
    path.write_text(yaml.safe_dump(tiny_tree))
    assert load_config(path, [f"train.num_threads={MAX_THREADS}"]).train.num_threads == MAX_THREADS


def test_an_alias_inside_a_set_value_is_refused(tmp_path, capsys, tiny_tree):
    err = _train(tmp_path, yaml.safe_dump(tiny_tree), capsys, "model.hidden=[&w 8, *w]")
    assert "model.hidden: line 1: YAML alias *w refused" in err


# --------------------------------------------------------------------------- harness.sweep


def _sweep(tmp_path, capsys, text: str | bytes, *sets: str) -> str:
    from harness.sweep.__main__ import main

    (tmp_path / "pyproject.toml").touch()
    path = tmp_path / "s.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    results = tmp_path / "results"
    args = [str(path), "--results", str(results)]
    for s in sets:
        args += ["--set", s]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{path}: "), err
    assert not results.exists()
    return err


def test_sweep_refuses_a_second_grid(tmp_path, capsys, tiny_tree):
    text = yaml.safe_dump({"name": "s", "base": tiny_tree}) + "grid:\n  seed: [0, 1]\ngrid:\n  method.tau: [0.1]\n"
    assert "duplicate key 'grid'" in _sweep(tmp_path, capsys, text)


def test_sweep_refuses_an_alias_bomb_and_binary(tmp_path, capsys):
    assert "YAML alias" in _sweep(tmp_path, capsys, "name: s\n" + laughs())
    assert "not a UTF-8 text file" in _sweep(tmp_path, capsys, b"\x89PNG\r\n\x1a\n\x00\x00\xff")


def test_sweep_refuses_an_empty_base_config(tmp_path, capsys):
    (tmp_path / "empty.yaml").write_text("# nothing\n")
    text = yaml.safe_dump({"name": "s", "base_config": "empty.yaml", "grid": {"seed": [0]}})
    assert "base_config: empty.yaml: the config file is empty" in _sweep(tmp_path, capsys, text)


def test_names_and_partitions_with_a_final_newline_are_refused(tmp_path, capsys, tiny_tree):
    doc = {"name": "abc\n", "base": tiny_tree, "grid": {"seed": [0]}}
    assert "name: got 'abc\\n'; allowed" in _sweep(tmp_path, capsys, yaml.safe_dump(doc))
    doc = {"name": "abc", "base": tiny_tree, "grid": {"seed": [0]}, "slurm": {"partition": "debug\n"}}
    assert "slurm.partition: got 'debug\\n'; allowed" in _sweep(tmp_path, capsys, yaml.safe_dump(doc))
    doc = {"name": "abc", "base": tiny_tree, "grid": {"seed": [0]}}
    err = _sweep(tmp_path, capsys, yaml.safe_dump(doc), 'slurm.partition="gpu\\n"')
    assert "slurm.partition: got 'gpu\\n'; allowed" in err
    err = _sweep(tmp_path, capsys, yaml.safe_dump(doc), 'slurm.extra.account="lab\\n"')
    assert "slurm.extra.account: got 'lab\\n'; allowed" in err


def test_yaml_is_parsed_in_one_place():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    users = [str(p.relative_to(root)) for d in ("harness", "methods") for p in (root / d).rglob("*.py")
             if "yaml.safe_load(" in p.read_text() or "yaml.load(" in p.read_text()]
    assert users == ["harness/yaml_io.py"]


# --------------------------------------------------------------------------- output paths (issue 20)


@pytest.fixture
def done_sweep(tmp_path):
    """TEST DATA: a fabricated sweep folder of done runs (tests/test_figures.py)."""
    from test_figures import fabricate

    fabricate(tmp_path / "results", "paper_temperature")
    return tmp_path / "results" / "paper_temperature"


def _one_line_exit_2(main, args, capsys) -> str:
    assert main([str(a) for a in args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err, err
    return err


def _files_under(folder) -> set:
    return {p for p in folder.rglob("*")}


@pytest.mark.parametrize("name", ["../x", "../../../../x/evilplot", "/tmp/evil", "a/b", ".hidden", "", "x.png"])
def test_plot_name_never_leaves_the_plots_folder(done_sweep, capsys, name):
    from harness.plot import main

    before = _files_under(done_sweep.parent.parent)
    err = _one_line_exit_2(main, [done_sweep, "--name", name], capsys)
    assert "--name: got" in err and "allowed: a file name without folder" in err
    assert _files_under(done_sweep.parent.parent) == before


def test_plot_bad_output_folders_are_one_line(done_sweep, tmp_path, capsys):
    from harness.plot import main

    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    assert "is a file" in _one_line_exit_2(main, [done_sweep, "--out", a_file], capsys)
    assert "does not exist" in _one_line_exit_2(main, [done_sweep, "--out", tmp_path / "no" / "such"], capsys)
    assert "does not exist" in _one_line_exit_2(main, [done_sweep, "--out", a_file / "sub"], capsys)
    (done_sweep / "plots").mkdir()
    (done_sweep / "plots" / "curves-fid-by-method_tau.png").mkdir()  # the file to write is a folder
    assert "is a folder" in _one_line_exit_2(main, [done_sweep], capsys)


def test_plots_folder_linked_out_of_the_sweep_is_refused(done_sweep, tmp_path, capsys):
    from harness.plot import main

    outside = tmp_path / "outside"
    outside.mkdir()
    (done_sweep / "plots").symlink_to(outside)
    assert "outside" in _one_line_exit_2(main, [done_sweep], capsys)
    assert not any(outside.iterdir())


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_results_are_one_line(done_sweep, capsys):
    from harness.plot import main as plot_main
    from harness.report import main as report_main

    done_sweep.chmod(0o555)
    try:
        assert "cannot be written" in _one_line_exit_2(plot_main, [done_sweep], capsys)
        _one_line_exit_2(report_main, [done_sweep, "--no-figures"], capsys)
    finally:
        done_sweep.chmod(0o755)


def test_report_bad_output_paths_are_one_line(done_sweep, tmp_path, capsys):
    from harness.report import main

    (done_sweep / "report.html").mkdir()
    assert "is a folder" in _one_line_exit_2(main, [done_sweep, "--no-figures"], capsys)
    assert "is a folder" in _one_line_exit_2(main, [done_sweep, "--no-figures", "--out", tmp_path], capsys)
    err = _one_line_exit_2(main, [done_sweep, "--no-figures", "--out", tmp_path / "no" / "r.html"], capsys)
    assert "does not exist" in err
    (done_sweep / "report.html").rmdir()
    outside = tmp_path / "outside.html"
    outside.write_text("mine")
    (done_sweep / "report.html").symlink_to(outside)  # a link out of the sweep folder
    assert "a link out of the sweep folder" in _one_line_exit_2(main, [done_sweep, "--no-figures"], capsys)
    assert outside.read_text() == "mine"


def test_sweep_run_folder_linked_outside_is_one_line(tmp_path, capsys, tiny_tree):
    from harness.sweep.spec import load_sweep

    (tmp_path / "pyproject.toml").touch()
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": tiny_tree, "grid": {"seed": [0]}}))
    rid = load_sweep(str(path), []).runs[0].id
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "results" / "s").mkdir(parents=True)
    (tmp_path / "results" / "s" / rid).symlink_to(outside)
    from harness.sweep.__main__ import main

    assert main([str(path), "--results", str(tmp_path / "results")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "is outside" in err and "remove the link" in err, err
    assert not any(outside.iterdir()) and not (tmp_path / "results" / "s" / "sweep.json").exists()


# ---------------------------------------------------------------------------- trusted caches (issue 20)
# Cached reference statistics and feature networks are content-addressed and verified on load:
# a poisoned or swapped file is recomputed with a one-line notice, never used.


def _domain_fid_setup(tmp_path, monkeypatch):
    """A digits run measuring FID in a short-recipe lenet space; (evaluator factory, model)."""
    import torch

    from harness.config import config_from_dict
    from harness.datasets import load_dataset
    from harness.evaluators import build_evaluator, lenet_training, make_context
    from harness.priors import build_prior

    monkeypatch.setattr(lenet_training, "RECIPE", {**lenet_training.RECIPE, "steps": 40, "batch_size": 64})
    monkeypatch.setenv("MOCA_CACHE_DIR", str(tmp_path / "nets"))
    cfg = config_from_dict({"data": {"name": "digits"},
                            "eval": {"metrics": ["fid"], "fid": {"features": "lenet", "num_samples": 120,
                                                                  "kid_subsets": 2, "cache_dir": str(tmp_path / "fid")}}})
    data = load_dataset(cfg.data)

    class Decoder(torch.nn.Module):  # "generates" test images picked by the latent's first coordinate
        def forward(self, z):
            idx = ((z[:, 0] + 1) / 2 * (len(data.test_x) - 1)).round().long()
            return data.test_x[idx].float() / 255

    model = torch.nn.Module()
    model.decoder = Decoder()
    return (lambda run: build_evaluator("fid", make_context(cfg, data, build_prior("sphere", 4), "cpu",
                                                             tmp_path / run))), model


def _provenance(tmp_path, run):
    import json

    return json.loads((tmp_path / run / "fid_provenance.json").read_text())


def test_poisoned_reference_statistics_are_recomputed_with_a_notice(tmp_path, monkeypatch, capsys):
    import numpy as np

    make, model = _domain_fid_setup(tmp_path, monkeypatch)
    clean = make("clean")(model, 1)
    prov = _provenance(tmp_path, "clean")
    path = prov["reference_cache"]
    assert len(prov["reference_cache_key"]) == 64 and prov["reference_cache_key"][:16] in path
    capsys.readouterr()
    with np.load(path) as f:
        entry = dict(f)
    # consistent poison: other features, with their own mean and covariance, under the right key
    features = entry["features"][::-1] * 0.5
    np.savez(path, **{**entry, "features": features, "mu": features.mean(0),
                      "sigma": np.cov(features.astype(np.float64), rowvar=False)})
    poisoned = make("poisoned")(model, 1)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "reference statistics" in err[0] and "recomputing" in err[0]
    assert poisoned == clean and not _provenance(tmp_path, "poisoned")["reference_read_from_cache"]
    # a file of another entry copied over this one: its key gives it away
    np.savez(path, **{**entry, "key": np.array("0" * 64)})
    assert make("foreign")(model, 1) == clean
    assert "is not" in capsys.readouterr().err
    assert make("again")(model, 1) == clean and _provenance(tmp_path, "again")["reference_read_from_cache"]


def test_a_swapped_feature_network_with_a_consistent_record_is_detected(tmp_path, monkeypatch, capsys):
    import json
    from pathlib import Path

    import torch

    from harness.datasets import load_dataset
    from harness.config import DataConfig
    from harness.evaluators import lenet_training as T
    from harness.metrics.fid import sha256_file

    make, model = _domain_fid_setup(tmp_path, monkeypatch)
    clean = make("clean")(model, 1)
    prov = _provenance(tmp_path, "clean")
    weights = Path(prov["weights_path"])
    record = weights.parent / (weights.name.split("-w")[0] + ".json")
    assert prov["weights_sha256"] == sha256_file(weights) and record.is_file()
    # another network (trained on shuffled labels), written over the cached one
    digits = load_dataset(DataConfig(name="digits"))
    other = T.train_lenet(digits.train_x, digits.train_y[torch.randperm(len(digits.train_y))], 10, T.RECIPE)
    torch.save(other.state_dict(), weights)
    info = json.loads(record.read_text())
    for rename in (False, True):  # the record's checksum updated; then the file renamed to match too
        info["weights_sha256"] = sha256_file(weights)
        if rename:
            new = weights.parent / f"{record.stem}-w{info['weights_sha256'][:16]}.pt"
            weights.replace(new)
            weights, info["weights_file"] = new, new.name
        record.write_text(json.dumps(info))
        capsys.readouterr()
        assert make(f"swapped{rename}")(model, 1) == clean
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "swapped" in err[0] and "training it" in err[0]
        assert _provenance(tmp_path, f"swapped{rename}")["weights_sha256"] == prov["weights_sha256"]
        weights = Path(_provenance(tmp_path, f"swapped{rename}")["weights_path"])
        torch.save(other.state_dict(), weights)
        info = json.loads(record.read_text())


def test_a_cache_file_that_is_a_symlink_out_of_its_folder_is_refused_in_one_line(tmp_path):
    from harness.evaluators import feature_cache as C
    from harness.run_folder import PathEscape

    folder, outside = tmp_path / "cache", tmp_path / "elsewhere.npz"
    folder.mkdir()
    outside.write_bytes(b"not yours")
    (folder / "mnist-test-n10-0123456789abcdef.npz").symlink_to(outside)
    with pytest.raises(PathEscape) as err:
        C.stats_path(folder, "mnist", "test", 10, "0123456789abcdef" * 4)
    assert "outside" in str(err.value) and "\n" not in str(err.value)
    for name in ("../x.npz", "a/b.npz", ".."):
        with pytest.raises(PathEscape):
            C.confined(folder, name)
