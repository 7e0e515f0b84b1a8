"""Bad command lines and settings refused in one line before anything runs (issue 21.7), and
a multi-process run's settings checked before its processes join (issue 20, DDP)."""

from __future__ import annotations

import copy
import importlib
import os
import subprocess
import sys

import pytest
import torch
import yaml

from conftest import TINY
from harness.config import ConfigError, config_from_dict

CLIS = ["harness.train", "harness.sweep.__main__", "harness.collect", "harness.plot", "harness.report",
        "harness.figures.__main__", "harness.reproduce.__main__"]


@pytest.mark.parametrize("module", CLIS)
def test_an_argparse_error_is_one_line_with_exit_2(module, capsys):
    main = importlib.import_module(module).main
    with pytest.raises(SystemExit) as exit_:
        main(["--no-such-flag"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("error: python -m harness.")
    assert "unrecognized arguments: --no-such-flag" in err or "required" in err


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpus_are_refused_on_a_machine_without_cuda(tmp_path, tiny_tree, capsys):
    from harness.sweep.__main__ import main

    tiny_tree["train"]["device"] = "auto"  # the default: it would train on the GPU it was given
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"name": "s", "base": tiny_tree, "grid": {"seed": [0]}}))
    assert main([str(path), "--results", str(tmp_path / "results"), "--gpus", "0"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--gpus 0: this machine has no usable CUDA device" in err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize("key, value, bound", [
    ("epochs", 10**30, "train.epochs: got 1000000000000000000000000000000; allowed: an integer >= 1 and <= 100000"),
    ("batch_size", 161, "train.batch_size: got 161; allowed: an integer <= 160, the training items"),
])
def test_epochs_and_batch_size_have_upper_bounds(tiny_tree, key, value, bound):
    tiny_tree["train"][key] = value
    with pytest.raises(ConfigError) as e:
        config_from_dict(tiny_tree)
    assert str(e.value).startswith(bound)


def test_a_batch_larger_than_the_loaded_data_is_refused_not_shrunk():
    """A dataset whose size is known only once loaded: refused when the batch is built."""
    from harness.build import split_batches

    with pytest.raises(ConfigError, match=r"train.batch_size: got 200; allowed: an integer <= 160"):
        split_batches(200, 3, 160, 1)
    assert split_batches(32, 3, 160, 2).local == 16


def _torchrun(tree, tmp_path, out, nproc=2, timeout=120):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tree))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "harness.train", str(path), "--out", str(out)]
    return subprocess.run(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=timeout)


def test_ddp_batch_that_does_not_split_is_refused_before_the_processes_join(tmp_path):
    tree = copy.deepcopy(TINY)
    tree["train"]["batch_size"] = 31
    done = _torchrun(tree, tmp_path, tmp_path / "run")
    assert done.returncode != 0
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors and all(line.endswith("train.batch_size: got 31; allowed: a multiple of the 2 processes of the run")
                          for line in errors)
    ours = [line for line in done.stderr.splitlines() if line.strip().startswith("File") and "/harness/" in line]
    assert ours == []  # no traceback of the harness (torchrun prints its own ChildFailedError report)
    assert not (tmp_path / "run").exists()


def test_a_failing_rank_0_makes_the_launcher_exit_non_zero(tmp_path):
    """Rank 0 refuses the folder (a file): the other rank is told and stops too, so the
    launcher exits non-zero at once instead of rank 1 waiting for a partner that left."""
    (tmp_path / "afile").write_text("x")
    done = _torchrun(copy.deepcopy(TINY), tmp_path, tmp_path / "afile")
    assert done.returncode != 0
    assert f"error: {tmp_path / 'afile'} is a file, not a run folder" in done.stderr
    crashed = [line for line in done.stderr.splitlines() if "Error" in line and "ChildFailedError" not in line
               and not line.startswith("error:")]
    assert crashed == []  # rank 1 stopped because it was told, not because its partner vanished


def test_a_model_that_cannot_be_allocated_is_one_line_and_no_run_folder(tmp_path, tiny_tree, capsys):
    """Issue 18.8: latent_dim 10^12 needs ~10^6 GiB; refused before the run folder exists,
    naming the setting and the size (the model is sized on the meta device, not allocated)."""
    from harness.train import main

    tiny_tree["model"]["latent_dim"] = 10**12
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(tiny_tree))
    assert main([str(path), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "model.latent_dim: got 1000000000000 (model.arch mlp): the model needs " in err
    assert "GiB for weights, gradients and Adam state; this machine has" in err
    assert not (tmp_path / "run").exists()
