"""Every sweep file expands to the same runs as before the sweep algebra (harness/sweep/grid.py)
replaced the hand-written expansion: the run ids, names, varied values, name and varied keys
and (search sweeps) the stage groups of each file, fingerprinted in
tests/data/sweep_expansions.json (written once from the code before the change). A sweep
file whose expansion changes on purpose updates its fingerprint in the same commit, saying why.

Besides the shipped files, one synthetic sweep interleaves every section (cases, grid,
paired, per_method) so that the order of the product and which value wins are pinned too,
and search sweeps are pinned with their tuned stage (the second trial of each method chosen).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from harness.sweep import load_sweep

ROOT = Path(__file__).resolve().parent.parent
FINGERPRINTS = ROOT / "tests" / "data" / "sweep_expansions.json"
FILES = sorted((ROOT / "sweeps").glob("*.yaml")) + sorted((ROOT / "sweeps" / "paper").glob("*.yaml"))

MIXED = """
name: mixed_sections
base:
  data: {name: synthetic, num_points: 160, input_dim: 10}
  model: {arch: mlp, hidden: [32], latent_dim: 8, prior: sphere}
  method: {name: moca, weight: 1.0}
  train: {epochs: 2, batch_size: 32, device: cpu, progress: "off"}
cases:
  - {model.latent_dim: 4}
  - {model.latent_dim: 6, optim.lr: 3.0e-4}
grid:
  seed: [0, 1]
paired:
  - {method.name: [moca, mmd, swd], method.weight: [10.0, 1.0, 3.0]}
  - {train.batch_size: [16, 32]}
per_method:
  moca: {method.tau: 0.3, method.queue_size: 50, optim.lr: 1.0e-2}
  mmd: {method.kernel: rbf, model.latent_dim: 9}
"""


def fingerprint(sweep) -> dict:
    rows = [[r.id, r.name, r.varied] for r in sweep.runs]
    groups = sorted([f"{stage}/{method}", ids] for (stage, method), ids in sweep.groups.items())
    blob = json.dumps({"runs": rows, "name_keys": sweep.name_keys, "varied_keys": sweep.varied_keys,
                       "groups": groups}, sort_keys=True, default=repr)
    return {"runs": len(rows), "sha256": hashlib.sha256(blob.encode()).hexdigest()}


def expansions(mixed_file: Path) -> dict[str, dict]:
    """name -> fingerprint of every shipped sweep file (search sweeps also with their tuned
    stage) and of the synthetic mixed-sections sweep."""
    out = {}
    for path in FILES:
        sweep = load_sweep(path, [])
        name = str(path.relative_to(ROOT))
        out[name] = fingerprint(sweep)
        if sweep.search is not None:
            chosen = {m: sweep.search.trial_values(m, 1) for m in sweep.search.methods}
            out[name + " (tuned)"] = fingerprint(load_sweep(path, [], selected=chosen))
    out["mixed_sections"] = fingerprint(load_sweep(mixed_file, []))
    return out


def test_every_sweep_file_expands_to_the_pinned_runs(tmp_path):
    mixed = tmp_path / "mixed_sections.yaml"
    mixed.write_text(MIXED)
    got = expansions(mixed)
    pinned = json.loads(FINGERPRINTS.read_text())
    assert set(got) == set(pinned), "a sweep file was added or removed: pin its expansion in " + str(FINGERPRINTS)
    changed = [name for name in got if got[name] != pinned[name]]
    assert not changed, f"these sweeps no longer expand to the same runs: {changed}"


if __name__ == "__main__":  # python tests/test_sweep_expansion_pinned.py > tests/data/sweep_expansions.json
    import sys
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "mixed_sections.yaml").write_text(MIXED)
        json.dump(expansions(Path(d) / "mixed_sections.yaml"), sys.stdout, indent=1, sort_keys=True)
        print()
