"""Aggregating runs into figures and tables (issue 21.6): bookkeeping columns are never
metrics, N counts finite values only (the caption says how many were left out), and a
metric whose every value is NaN is reported as such."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from harness.figures import generic
from harness.figures.results import ItemDataError


def runs_table() -> pd.DataFrame:
    """A runs.csv as harness.collect writes it: bookkeeping columns, then the final metrics."""
    return pd.DataFrame({
        "id": ["a", "b", "c", "d"], "name": ["s0", "s1", "s2", "s3"], "seed": [0, 1, 2, 3],
        "status": ["done"] * 4, "epochs": [3] * 4, "wall_time_s": [1.0] * 4,
        "in_sweep": [True] * 4, "warning": [""] * 4, "problems": [None] * 4, "reason": [None] * 4,
        "fid": [1.0, 2.0, math.nan, math.inf], "kid": [math.nan] * 4,
    })


def test_bookkeeping_columns_are_never_offered_as_metrics():
    assert generic.metric_columns(runs_table(), {"seed"}) == ["fid", "kid"]
    torn = runs_table().drop(columns=["fid", "kid"])  # every metrics line torn: nothing to plot
    assert generic.metric_columns(torn, {"seed"}) == []


def test_n_counts_finite_values_and_the_caption_says_how_many_were_left_out():
    data, display = generic.summary_table(runs_table(), [], ["fid"])
    assert data.loc[0, "fid_n"] == 2 and data.loc[0, "fid_mean"] == pytest.approx(1.5)
    assert data.loc[0, "fid_sd"] == pytest.approx(math.sqrt(0.5))
    assert display.loc[0, "fid"].endswith("(N=2)") and display.loc[0, "runs"] == 4
    assert generic.dropped_notes(runs_table(), ["fid"]) == [
        "fid: 2 of 4 values not finite (NaN or infinite), left out; N counts finite values only."]


def test_an_all_nan_metric_is_reported_as_such():
    _, display = generic.summary_table(runs_table(), [], ["kid"])
    assert display.loc[0, "kid"] == "no finite value"
    with pytest.raises(ItemDataError, match="every value of kid in the done runs is NaN or infinite"):
        generic._need(runs_table(), ["kid"], "table")
