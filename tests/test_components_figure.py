"""The components study's figure and table (harness.figures.components) on fabricated results.

Every result below is TEST DATA written into tmp_path by test_figures.fabricate (metric values
are simple functions of the grid point and the seed), plus epoch times chosen here.
"""

from __future__ import annotations

import json

import matplotlib.image as mpimg
import pandas as pd
import pytest

from harness.figures.components import case_label
from harness.figures.registry import ITEMS
from harness.figures.render import RENDERED, render_item
from test_figures import GRIDS, fabricate, fid_of


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setitem(GRIDS, "moca_components", {"method.name": ["moca", "uniformity", "mmd"], "seed": [0, 1]})
    root = tmp_path / "results"
    fabricate(root, "moca_components")
    for run in (root / "moca_components").iterdir():  # 10 steps per epoch, 0.5 s per epoch
        if (run / "metrics.jsonl").exists():
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            for r in rows:
                if r["epoch"] >= 1:
                    r["epoch_time_s"] = 0.5
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


def test_table_has_one_row_per_case_with_mean_and_sd_over_seeds(results):
    out = render_item(ITEMS["table_moca_components"], results)
    assert out.state == RENDERED, out.notes
    data = pd.read_csv(results / "tables" / "table_moca_components.csv")
    assert list(data["case"]) == ["MoCA (queue K=100, m=0.99)", "uniformity (batch + queue K=100)", "WAE-MMD"]
    for point in range(3):
        row = data.iloc[point]
        assert row["fid_mean"] == pytest.approx((fid_of(point, 0) + fid_of(point, 1)) / 2)
        assert row["fid_sd"] == pytest.approx(2 ** -0.5)  # two seeds one apart
        assert row["ms_per_step_mean"] == pytest.approx(50.0)  # 0.5 s / 10 steps
        assert row["runs"] == 2
    assert "beyond the paper" in (results / "tables" / "table_moca_components.md").read_text().lower()


def test_figure_renders_a_panel_per_logged_metric(results):
    out = render_item(ITEMS["moca_components"], results)
    assert out.state == RENDERED, out.notes
    assert mpimg.imread(results / "figures" / "moca_components.png").shape[0] > 100


@pytest.mark.parametrize("row,label", [
    ({"method.name": "moca", "method.negatives": "batch", "method.momentum": 0.99}, "MoCA (in-batch negatives, m=0.99)"),
    ({"method.name": "moca", "method.queue_size": 1000, "method.key_encoder": "online"}, "MoCA (queue K=1000, online keys)"),
    ({"method.name": "moca", "method.queue_size": 10, "method.momentum": 0.9, "method.key_bn": "shuffle",
      "method.key_bn_groups": 4}, "MoCA (queue K=10, m=0.9, shuffle-BN×4)"),
    ({"method.name": "uniformity", "method.queue_size": 1000}, "uniformity (batch + queue K=1000)"),
    ({"method.name": "svae"}, "S-VAE"),
])
def test_case_labels_name_the_variant(row, label):
    assert case_label(pd.Series(row)) == label
