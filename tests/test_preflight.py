"""The sweep's preflight (harness/sweep/preflight.py): data and feature networks made ready once
in the submitting process, before any run folder is written; runs that failed only for missing
data wait as pending (issue 19, items 2 and 3; issue 20, data verified in place)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from harness.datasets._files import MIRROR_ENV
from harness.run_folder import DATA_FAILURE, FAILED, PENDING, disk_state
from harness.sweep.state import run_state
from tests.conftest import SHARED_DATA
from tests.mirror import closed_port

MNIST_GZ = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"]
SHARED_RAW = Path(__import__("os").environ.get("MOCA_DATA_ROOT", str(SHARED_DATA))) / "MNIST" / "raw"


def mnist_sweep(tmp_path: Path, root: Path, **eval_cfg) -> Path:
    """A two-run MNIST sweep (tiny MLP) whose data root is ``root``."""
    (tmp_path / "pyproject.toml").touch()
    doc = {"name": "pre", "base": {
        "data": {"name": "mnist", "root": str(root), "train_limit": 64, "test_limit": 32},
        "model": {"arch": "mlp", "hidden": [16], "latent_dim": 4, "prior": "sphere"},
        "method": {"name": "none"}, "optim": {"lr": 1e-3},
        "train": {"epochs": 1, "batch_size": 32, "device": "cpu", "progress": "off"},
        "eval": {"every": 0, "metrics": ["recon"], **eval_cfg}, "seed": 0},
        "grid": {"seed": [0, 1]}}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def run_sweep(path: Path, results: Path, capsys, *extra: str) -> tuple[int, str]:
    from harness.sweep.__main__ import main

    code = main([str(path), "--results", str(results), "--executor", "debug", *extra])
    return code, capsys.readouterr().err


def test_no_data_no_network_stops_before_any_folder_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{closed_port()}/")  # no network, no mirror
    results = tmp_path / "results"
    code, err = run_sweep(mnist_sweep(tmp_path, tmp_path / "empty"), results, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert "MOCA_DATA_ROOT" in err and MIRROR_ENV in err and all(name in err for name in MNIST_GZ)
    assert "download failed" in err
    assert not results.exists()


@pytest.mark.parametrize("case", ["truncated", "swapped"])
def test_corrupt_data_stops_the_sweep_before_any_folder(tmp_path, capsys, case):
    if not all((SHARED_RAW / n).is_file() for n in MNIST_GZ):
        pytest.skip(f"real MNIST files not in {SHARED_RAW}")
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in MNIST_GZ:
        shutil.copyfile(SHARED_RAW / name, raw / name)
    bad = raw / "train-labels-idx1-ubyte.gz"
    if case == "truncated":
        bad.write_bytes(bad.read_bytes()[:1000])
    else:
        shutil.copyfile(raw / "t10k-labels-idx1-ubyte.gz", bad)
    results = tmp_path / "results"
    code, err = run_sweep(mnist_sweep(tmp_path, tmp_path / "data"), results, capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{bad.resolve()}: md5" in err and "delete it to download it again" in err
    assert not results.exists()


def test_feature_network_is_loaded_once_in_the_submitting_process(tmp_path, capsys, monkeypatch):
    """Both runs need the lenet network: the preflight asks for it once, before any folder is
    written, and a failure there is one line, exit 2."""
    if not all((SHARED_RAW / n).is_file() for n in MNIST_GZ):
        pytest.skip(f"real MNIST files not in {SHARED_RAW}")
    calls = []

    def fake_load(name, cfg, data, device, batch_size=200):
        calls.append((name, cfg.seed, len(data.train_x), device))
        raise OSError("no cache folder can be written; set MOCA_CACHE_DIR to a writable folder")

    monkeypatch.setattr("harness.evaluators.feature_nets.load_or_train_feature_net", fake_load)
    results = tmp_path / "results"
    path = mnist_sweep(tmp_path, SHARED_RAW.parents[1], metrics=["recon", "fid"],
                       fid={"features": "lenet", "num_samples": 16})
    code, err = run_sweep(path, results, capsys)
    assert calls == [("lenet", 0, 64, "cpu")]
    assert code == 2 and err.count("\n") == 1 and "lenet feature network: no cache folder" in err, err
    assert not results.exists()


def test_a_run_that_failed_for_missing_data_waits_as_pending(tmp_path):
    status = {"state": FAILED, "reason": "MNIST: ... not under data", "failure": DATA_FAILURE}
    assert run_state(tmp_path, status=status) == PENDING and disk_state(status) == PENDING
    other = {"state": FAILED, "reason": "RuntimeError: boom"}
    assert run_state(tmp_path, status=other) == FAILED and disk_state(other) == FAILED


def test_missing_data_failure_is_recorded_and_retried_once_the_data_is_there(tmp_path, capsys, monkeypatch):
    """A run trained without its data fails with failure: data; the sweep started again with
    the data in place shows it pending (not failed) and trains it without --retry-failed."""
    if not all((SHARED_RAW / n).is_file() for n in MNIST_GZ):
        pytest.skip(f"real MNIST files not in {SHARED_RAW}")
    from harness.config import config_from_dict
    from harness.sweep.spec import load_sweep
    from harness.train import train_run

    path = mnist_sweep(tmp_path, tmp_path / "data")
    sweep = load_sweep(str(path), [])
    results = tmp_path / "results"
    first = sweep.runs[0]
    monkeypatch.setenv(MIRROR_ENV, f"http://127.0.0.1:{closed_port()}/")
    cfg = config_from_dict(first.config.to_dict())
    assert train_run(cfg, results / "pre" / first.id) == FAILED  # e.g. a run started by hand, offline
    from harness.run_folder import read_status

    assert read_status(results / "pre" / first.id)["failure"] == DATA_FAILURE
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for name in MNIST_GZ:
        shutil.copyfile(SHARED_RAW / name, raw / name)
    code, err = run_sweep(path, results, capsys)
    assert code == 0, err
    assert "failed runs are not rerun" not in err
    assert read_status(results / "pre" / first.id)["state"] == "done"


def test_feature_network_notice_goes_to_the_sweeps_stderr_once(tmp_path, capsys, monkeypatch):
    """The one-time training of the lenet network happens in the preflight, its notice on the
    submitting process's stderr (not in the first run's train.log); a second preflight loads it
    from the cache, silently. (Training itself is replaced by an untrained network: its recipe
    is tests/test_lenet.py's business.)"""
    if not all((SHARED_RAW / n).is_file() for n in MNIST_GZ):
        pytest.skip(f"real MNIST files not in {SHARED_RAW}")
    from harness.evaluators import lenet_training
    from harness.metrics import lenet
    from harness.sweep.preflight import preflight
    from harness.sweep.spec import load_sweep

    monkeypatch.setenv("MOCA_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(lenet_training, "train_lenet", lambda x, y, classes, recipe=None: lenet.LeNet(x.shape[1], classes).eval())
    path = mnist_sweep(tmp_path, SHARED_RAW.parents[1], metrics=["recon", "fid"],
                       fid={"features": "lenet", "num_samples": 16})
    configs = [run.config for run in load_sweep(str(path), []).runs]
    preflight(configs)
    err = capsys.readouterr().err
    assert err.count("lenet feature network:") == 1 and "training it on 60,000 mnist images" in err, err
    preflight(configs)
    assert "lenet feature network" not in capsys.readouterr().err
