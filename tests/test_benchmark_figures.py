"""The benchmark's budget curves and test table (harness/figures/benchmark.py), checked against
exact order statistics, and the whole flow end to end: a tiny search sweep, then the figures."""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from harness.figures import benchmark as B
from harness.figures.base import CPU_SCALE, SweepRef
from harness.figures.registry import ITEMS
from harness.figures.render import RENDERED, render_item
from harness.sweep import load_sweep
from harness.sweep.__main__ import main
from tests.test_search import search_doc, write


def exact_expected_best(values, k, mode="min"):
    """E[best of a uniformly random k-subset] by enumeration."""
    pick = min if mode == "min" else max
    subsets = list(itertools.combinations(values, k))
    return sum(pick(s) for s in subsets) / len(subsets)


def test_budget_curve_mean_is_the_expected_best_of_k_random_trials():
    values = [5.0, 1.0, 4.0, 2.0, 9.0]
    for mode in ("min", "max"):
        c = B.budget_curve(values, mode, r=4000)
        for k in range(1, 6):
            assert c.loc[k - 1, "mean"] == pytest.approx(exact_expected_best(values, k, mode), rel=0.03)
        last = c.iloc[-1]
        assert last["mean"] == last["low"] == last["high"] == (1.0 if mode == "min" else 9.0)
    # the band holds the 2.5-97.5 % of orders: after one trial it spans nearly all values
    c = B.budget_curve(values, "min", r=4000)
    assert c.loc[0, "low"] == 1.0 and c.loc[0, "high"] == 9.0


def test_failed_trials_count_but_never_win():
    c = B.budget_curve([np.nan, 3.0], "min", r=2000)
    assert c.loc[0, "have"] == pytest.approx(0.5, abs=0.05) and c.loc[0, "mean"] == 3.0
    assert c.loc[1, "mean"] == 3.0 and c.loc[1, "have"] == 1.0


def test_time_curve_is_the_best_among_trials_finished_by_then():
    # two trials: value 1 takes 10 s, value 5 takes 1 s. At t = 1..9 only orders that ran the
    # 1-second trial first have a value (5); at t >= 11 every order has seen both.
    c = B.time_curve([1.0, 5.0], [10.0, 1.0], "min", np.array([0.5, 5.0, 10.5, 11.0]), r=2000)
    assert np.isnan(c.loc[0, "mean"]) and c.loc[0, "have"] == 0
    assert c.loc[1, "mean"] == 5.0 and c.loc[1, "have"] == pytest.approx(0.5, abs=0.05)
    assert c.loc[3, "mean"] == 1.0 and c.loc[3, "have"] == 1.0


def test_t_summary_matches_scipy():
    import scipy.stats

    x = [1.0, 2.0, 4.0]
    mean, half, n = B.t_summary(x)
    lo, hi = scipy.stats.t.interval(0.95, 2, loc=np.mean(x), scale=scipy.stats.sem(x))
    assert (mean, n) == (pytest.approx(7 / 3), 3) and half == pytest.approx((hi - lo) / 2)
    assert B.t_summary([]) == (pytest.approx(np.nan, nan_ok=True), pytest.approx(np.nan, nan_ok=True), 0)


def test_shipped_benchmark_sweeps_validate():
    root = Path(__file__).resolve().parent.parent / "sweeps"
    cpu = load_sweep(root / "benchmark.yaml")
    assert cpu.search.budget == 20 and len(cpu.search.methods) == 9
    assert all(r.config.data.val_size == 1000 for r in cpu.runs)
    assert cpu.search.metric == "fid" and cpu.runs[0].config.eval.fid.features == "lenet"
    paper = load_sweep(root / "paper" / "benchmark.yaml")
    assert paper.name == "paper_benchmark" and paper.search.metric == "fid"


def test_search_sweep_end_to_end_to_figures_and_table(tmp_path, tiny_tree, capsys):
    doc = search_doc(tiny_tree, budget=3, fixed={"method.weight": 1.0})
    doc["name"] = "bench_tiny"
    path, results = write(tmp_path, doc), tmp_path / "results"
    assert main([str(path), "--results", str(results), "--executor", "debug"]) == 0
    record = json.loads((results / "bench_tiny" / "search.json").read_text())
    ref = (SweepRef("bench_tiny", CPU_SCALE, str(path)),)
    outcomes = {i: render_item(dataclasses.replace(ITEMS[i], sweeps=ref), results)
                for i in ("bench_budget", "bench_time", "bench_table")}
    assert all(o.state == RENDERED for o in outcomes.values()), {i: o.notes for i, o in outcomes.items()}
    table = pd.read_csv(results / "tables" / "bench_table.csv")
    runs = pd.read_csv(results / "bench_tiny" / "runs.csv")
    for _, row in table.iterrows():
        method = row["method.name"]
        tuned = B.stage_ids(record, "tuned", method)
        assert len(tuned) == 3
        assert row["tuned test_recon mean"] == pytest.approx(runs[runs["id"].isin(tuned)]["test_recon"].mean())
        assert row["val test_recon"] == pytest.approx(min(t["value"] for t in record["trials"][method]))
    caption = (results / "tables" / "bench_table.md").read_text()
    assert "Tuned MoCA vs tuned WAE-MMD on the test split" in caption
    assert (results / "figures" / "bench_budget.png").stat().st_size > 0
    assert "REDUCED" not in caption
    # a reduced rerun says so in every caption
    assert main([str(path), "--results", str(results), "--executor", "debug", "--set", "search.budget=2"]) == 0
    assert json.loads((results / "bench_tiny" / "search.json").read_text())["overrides"] == ["search.budget=2"]
    render_item(dataclasses.replace(ITEMS["bench_budget"], sweeps=ref), results)
    render_item(dataclasses.replace(ITEMS["bench_table"], sweeps=ref), results)
    for f in ("figures/bench_budget.caption.md", "tables/bench_table.md"):
        assert "REDUCED / CHANGED from the sweep file by the command line: --set search.budget=2" in (results / f).read_text()
