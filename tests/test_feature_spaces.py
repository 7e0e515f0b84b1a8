"""Every FID names its feature space (issue 18.1, 19.6): runs.csv's ``fid_features`` column, read
from the runs' provenance through harness/run_folder.py; figures and tables label the unit,
captions state only the settings of the network used, and a mix of spaces is refused in one line.

The sweep is a copy of the committed ``results/temperature`` (18 MNIST runs, FID in LeNet
features), so the checks run on real result files.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from harness import plot
from harness.collect import collect

COMMITTED = Path(__file__).resolve().parents[1] / "results" / "temperature"
LENET_SHA = "d4d060b161a0948468b095aa1980f7fdfecd79192e68a2f4f41bfad614f62118"


@pytest.fixture
def sweep(tmp_path):
    folder = tmp_path / "temperature"
    shutil.copytree(COMMITTED, folder, ignore=shutil.ignore_patterns("plots"))
    return folder


def _run_folders(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if (p / "fid_provenance.json").is_file())


def test_runs_csv_names_the_feature_space_of_fid(sweep):
    runs, _ = collect(sweep)
    assert "fid_features" in runs.columns
    assert set(runs["fid_features"]) == {"lenet-128"} and set(runs["fid_features_sha256"]) == {LENET_SHA}
    assert "fid" in runs.columns and "fid_lenet" not in runs.columns  # the metric keeps its key
    columns = list(runs.columns)
    assert columns.index("problems") < columns.index("fid_features") < columns.index("loss")

    # a provenance file that lists its metrics gives its own unit column
    from harness.run_folder import FeatureSpace, feature_space, feature_spaces

    folder = _run_folders(sweep)[0]
    (folder / "mine_provenance.json").write_text(json.dumps(
        {"metrics": ["mine"], "features": "inception", "dims": 2048, "weights_sha256": "ab" * 32}))
    assert feature_space(folder, "mine") == FeatureSpace("inception-2048", "ab" * 32)
    assert feature_space(folder, "kid").label == "lenet-128"  # a file written before "metrics" existed
    assert feature_space(folder, "loss") is None and set(feature_spaces(folder)) == {"fid", "mine"}
    runs, _ = collect(sweep)
    assert runs.set_index("id").loc[folder.name, "mine_features"] == "inception-2048"


def test_the_committed_runs_csv_files_carry_the_column():
    root = Path(__file__).resolve().parents[1] / "results"
    with_fid = [p for p in root.glob("*/runs.csv") if "fid" in pd.read_csv(p, nrows=1).columns]
    assert with_fid and all("fid_features" in pd.read_csv(p, nrows=1).columns for p in with_fid)


def _table(sweep, tmp_path, capsys) -> tuple[int, str, str]:
    code = plot.main([str(sweep), "--kind", "table", "--y", "fid", "--out", str(tmp_path / "out"), "--name", "t"])
    out = capsys.readouterr()
    md = (tmp_path / "out" / "t.md").read_text() if code == 0 else ""
    return code, md, out.err


def test_tables_label_the_unit_and_captions_state_only_the_network_used(sweep, tmp_path, capsys):
    code, md, _ = _table(sweep, tmp_path, capsys)
    assert code == 0
    header = next(line for line in md.splitlines() if line.startswith("|"))
    assert "fid [lenet-128]" in header
    assert f"feature network lenet-128 (sha256 {LENET_SHA[:12]}, test accuracy 99.16%)" in md
    assert "eval.fid.dims" not in md  # Inception's setting, not the network used


def test_a_table_that_would_mix_feature_spaces_refuses_in_one_line(sweep, tmp_path, capsys):
    path = _run_folders(sweep)[0] / "fid_provenance.json"
    prov = json.loads(path.read_text())
    path.write_text(json.dumps({**prov, "features": "inception", "dims": 2048, "weights_sha256": "12" * 32,
                                "test_accuracy": None}))
    code, _, err = _table(sweep, tmp_path, capsys)
    assert code == 1 and len(err.strip().splitlines()) == 1 and not (tmp_path / "out" / "t.md").exists()
    assert "fid: the runs were measured in 2 feature spaces" in err and "inception-2048" in err
    # two lenet networks (same label, other weights) are two spaces too
    path.write_text(json.dumps({**prov, "weights_sha256": "34" * 32}))
    code, _, err = _table(sweep, tmp_path, capsys)
    assert code == 1 and "2 feature spaces" in err and "343434343434" in err


def test_the_report_shows_the_feature_space_and_the_network_hash(sweep):
    from harness.report import runs_table

    runs, _ = collect(sweep)
    html = runs_table(runs, ["method.tau", "method.weight", "seed"])
    assert ">fid_features<" in html and ">lenet-128<" in html and LENET_SHA in html


def test_runs_csv_alone_is_enough_to_refuse_a_mix(sweep, tmp_path, capsys):
    """A clone without run folders reads runs.csv: its fid_features columns carry the unit."""
    from harness.collect import write_collection

    path = _run_folders(sweep)[0] / "fid_provenance.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "weights_sha256": "56" * 32}))
    write_collection(sweep)
    for folder in _run_folders(sweep):
        shutil.rmtree(folder)
    code, _, err = _table(sweep, tmp_path, capsys)
    assert code == 1 and "fid: the runs were measured in 2 feature spaces" in err and "565656565656" in err


def test_a_metric_in_a_feature_space_is_one_registration(tmp_path, monkeypatch):
    """A new evaluator names its network, gets it from ctx.features, writes its provenance, and
    its unit reaches the run folder's feature spaces (hence runs.csv): no other file changes."""
    from dataclasses import dataclass

    import numpy as np

    from harness.atomic import write_json
    from harness.config import config_from_dict
    from harness.datasets import load_dataset
    from harness.evaluators import EVALUATORS, Evaluator, build_evaluators, lenet_training
    from harness.evaluators import needed
    from harness.priors import build_prior
    from harness.run_folder import feature_space

    @dataclass
    class MeanConfig:
        features: str = "lenet"

        def check(self, p):
            pass

    class FeatureMean(Evaluator):
        Config, config_key, needs_images = MeanConfig, "feature_mean", True

        @classmethod
        def feature_nets(cls, config):
            return [config.features]

        def __init__(self, config, ctx):
            super().__init__(config, ctx)
            self.net = ctx.features.get(config.features)
            write_json(ctx.run_dir / "feature_mean_provenance.json", {"metrics": ["feature_mean"],
                                                                      **self.net.provenance()})

        def __call__(self, model, epoch, final=False):
            return {"feature_mean": float(np.mean(self.net.extract(self.data.test_x[:10])))}

    monkeypatch.setattr(lenet_training, "RECIPE", {**lenet_training.RECIPE, "steps": 5})
    monkeypatch.setenv("MOCA_CACHE_DIR", str(tmp_path / "nets"))
    EVALUATORS.register("feature_mean_test")(FeatureMean)
    try:
        cfg = config_from_dict({"data": {"name": "digits"}, "eval": {"metrics": ["feature_mean_test"]}})
        assert needed(cfg) == ["lenet"]
        (run := tmp_path / "run").mkdir()
        (ev,) = build_evaluators(cfg, load_dataset(cfg.data), build_prior("sphere", 4), "cpu", run)
        assert ev(None, 0)["feature_mean"] >= 0
        assert feature_space(run, "feature_mean").label == "lenet-128"
    finally:
        EVALUATORS._items.pop("feature_mean_test")
