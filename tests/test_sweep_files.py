"""Every sweep file shipped in sweeps/ expands and validates (configs drift; this catches it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.sweep import load_sweep

SWEEPS = sorted((Path(__file__).resolve().parent.parent / "sweeps").glob("*.yaml"))


def test_the_paper_sweeps_are_shipped():
    names = {p.stem for p in SWEEPS}
    assert {"synthetic_latent", "mnist_convergence", "cifar10_convergence", "mnist_tsne"} <= names


@pytest.mark.parametrize("path", SWEEPS, ids=[p.stem for p in SWEEPS])
def test_sweep_file_expands_and_validates(path):
    sweep = load_sweep(path, [])
    assert sweep.name == path.stem
    assert len(sweep.runs) >= 1
    assert len({run.id for run in sweep.runs}) == len(sweep.runs)
