"""A new user's first hour, end to end (issue 19): a fresh ``git clone`` with no data anywhere
and no ``MOCA_DATA_ROOT``, MNIST served by a local HTTP server as ``$MOCA_DATA_MIRROR`` (from
the read-only copy ``../shared/data/MNIST/raw`` next to the repository, found as
tests/conftest.py finds it). The README's quick start and an MNIST study (sweeps/temperature.yaml,
shrunk with ``--set`` so that CI stays fast) run from the clone: the files download once,
md5-checked, the runs train, and ``git status`` stays clean. Without the mirror the study stops
before any run folder, in one line.

The clone is of the committed HEAD: uncommitted changes are not in it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.datasets._files import MIRROR_ENV
from harness.sweep import load_sweep
from tests.conftest import SHARED_DATA
from tests.mirror import closed_port, serve_folder

ROOT = Path(__file__).resolve().parents[1]
MNIST_GZ = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
            "t10k-labels-idx1-ubyte.gz"]
SHRINK_MNIST = ["data.train_limit=500", "train.epochs=1", "eval.num_samples=200", "eval.fid.num_samples=200",
                "eval.swd.num_images=100"]
SHRINK_QUICK = ["train.epochs=1"]

pytestmark = pytest.mark.slow


def shared_raw() -> Path:
    root = Path(os.environ.get("MOCA_DATA_ROOT") or SHARED_DATA)
    raw = root / "MNIST" / "raw"
    if not all((raw / n).is_file() for n in MNIST_GZ):
        pytest.skip(f"no MNIST copy to serve in {raw}")
    return raw


@pytest.fixture
def clone(tmp_path) -> Path:
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    dest = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(dest)], check=True, capture_output=True)
    return dest


def harness(clone: Path, env: dict, *args: str, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", *args], cwd=clone, env=env, capture_output=True, text=True,
                          timeout=timeout)


def user_env(clone: Path, mirror: str) -> dict:
    """A new user's environment: the clone's code, no data root, the mirror; feature networks
    in the tests' cache (tests/conftest.py), so CI trains the LeNet once for all tests."""
    env = {k: v for k, v in os.environ.items() if k not in ("MOCA_DATA_ROOT", "PYTHONPATH")}
    env.update(PYTHONPATH=str(clone), no_proxy="127.0.0.1,localhost", **{MIRROR_ENV: mirror})
    return env


def sets(values: list[str]) -> list[str]:
    return [arg for v in values for arg in ("--set", v)]


def test_fresh_clone_downloads_and_trains(clone, tmp_path):
    servers: list = []
    url = serve_folder(shared_raw(), servers)
    try:
        env = user_env(clone, url)
        results = tmp_path / "results"  # the committed results would make every run "done" already
        quick = ["harness.sweep", "sweeps/synthetic_latent.yaml", "--results", str(results), *sets(SHRINK_QUICK)]
        assert harness(clone, env, *quick, "--dry-run").returncode == 0
        done = harness(clone, env, *quick, "--workers", "2")
        assert done.returncode == 0, done.stderr[-3000:]
        status = harness(clone, env, *quick, "--status")
        n = len(load_sweep(clone / "sweeps" / "synthetic_latent.yaml", SHRINK_QUICK).runs)
        assert f"{n} runs: {n} done" in status.stdout, status.stdout

        study = ["harness.sweep", "sweeps/temperature.yaml", "--results", str(results), *sets(SHRINK_MNIST)]
        done = harness(clone, env, *study, "--workers", "2")
        assert done.returncode == 0, done.stderr[-3000:]
        n = len(load_sweep(clone / "sweeps" / "temperature.yaml", SHRINK_MNIST).runs)  # the design's grid
        assert f"{n} runs: {n} done" in done.stdout, done.stdout
        raw = clone / "data" / "MNIST" / "raw"
        assert sorted(p.name for p in raw.iterdir()) == sorted(MNIST_GZ)  # downloaded, nothing else left
        for name in MNIST_GZ:
            assert (raw / name).read_bytes() == (shared_raw() / name).read_bytes()
        git = subprocess.run(["git", "status", "--porcelain", "--ignored=no"], cwd=clone, capture_output=True,
                             text=True, check=True)
        assert git.stdout == "", git.stdout
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def test_fresh_clone_without_data_or_mirror_stops_in_one_line(clone, tmp_path):
    env = user_env(clone, f"http://127.0.0.1:{closed_port()}/")  # no network, no mirror
    results = tmp_path / "results"
    out = harness(clone, env, "harness.sweep", "sweeps/temperature.yaml", "--results", str(results),
                  *sets(SHRINK_MNIST), timeout=300)
    assert out.returncode == 2 and out.stderr.count("\n") == 1, out.stderr
    assert "MOCA_DATA_ROOT" in out.stderr and MIRROR_ENV in out.stderr and all(n in out.stderr for n in MNIST_GZ)
    assert not results.exists()
