"""``python -m harness.plot`` on fabricated sweep results (TEST DATA from test_figures.fabricate:
final FID = 60 + 5·point + seed, curves 1 + 0.5·point + 0.1·seed + 1/(epoch+1), so means and
Student's t intervals over the two seeds are known by hand)."""

from __future__ import annotations

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from test_figures import curve_of, fabricate, fid_of

from harness.figures.base import Item, ItemData
from harness.figures.generic import PlotSpec, ReadAt, draw_spec, t_half_width
from harness.figures.results import load_sweep_results
from harness.plot import main

T_1 = 12.706204736174704  # t_{0.975, 1}: two seeds per point


@pytest.fixture
def sweep(tmp_path):
    """paper_temperature: τ ∈ {0.05, 0.5} × λ ∈ {100, 1000} × seed ∈ {0, 1}; points 0..3 in that order."""
    fabricate(tmp_path, "paper_temperature")
    return tmp_path / "paper_temperature"


def _item_data(folder):
    s = load_sweep_results(folder.parent, folder.name)
    return ItemData(Item("t", "figure", "t", "", (), lambda d: None, ()), [s], {s.name: "test"})


def test_table_is_the_mean_and_t_interval_over_seeds(sweep, capsys):
    assert main([str(sweep), "--kind", "table", "--y", "fid", "--x", "method.tau", "--hue", "method.weight"]) == 0
    stem = sweep / "plots" / "table-fid-vs-method_tau-by-method_weight"
    data = pd.read_csv(stem.with_suffix(".csv"))
    assert len(data) == 4 and list(data["runs"]) == [2, 2, 2, 2]
    # point index: (τ, λ) in grid order (0.05,100), (0.05,1000), (0.5,100), (0.5,1000)
    for point, (tau, lam) in enumerate([(0.05, 100.0), (0.05, 1000.0), (0.5, 100.0), (0.5, 1000.0)]):
        row = data[(data["method.tau"] == tau) & (data["method.weight"] == lam)].iloc[0]
        values = [fid_of(point, s) for s in (0, 1)]
        assert row["fid_mean"] == pytest.approx(np.mean(values))
        assert row["fid_ci95"] == pytest.approx(T_1 * np.std(values, ddof=1) / np.sqrt(2))
    md = stem.with_suffix(".md").read_text()
    assert "| τ | λ | fid | runs |" in md and "| 0.05 | 100 | 60.5 ± 6.4 | 2 |" in md  # (60 + 61) / 2 ± 12.706 · 0.707 / 1.414
    assert "mean ± half-width of the 95 % confidence interval" in md and "data.name = cifar10" in md
    assert "\\begin{table}" in stem.with_suffix(".tex").read_text()


def test_defaults_are_chosen_and_said(sweep, capsys):
    assert main([str(sweep)]) == 0
    out = capsys.readouterr().out
    assert "chose --y fid (headline metric" in out and "chose --kind curves" in out and "chose --hue method.tau" in out
    png = sweep / "plots" / "curves-fid-by-method_tau.png"
    assert mpimg.imread(png).shape[0] > 300
    caption = (sweep / "plots" / "curves-fid-by-method_tau.caption.md").read_text()
    # λ varies too and was not named: it is in the legend, and the caption says so
    assert "also varied, shown in the legend (not averaged): λ" in caption
    assert "2 runs (seeds) per point" in caption and "8 of 8 runs done" in caption


def test_unnamed_varied_keys_are_never_averaged(sweep):
    out = draw_spec(PlotSpec("table", ("fid",), x="method.weight"), _item_data(sweep))
    assert len(out.data) == 4 and set(out.data["method.tau"]) == {0.05, 0.5}  # split by τ, not pooled
    assert any("also varied, one row per value (not averaged): τ" in n for n in out.notes)


def test_line_plot_draws_means_against_the_key(sweep):
    fig = draw_spec(PlotSpec("line", ("test_recon",), x="method.weight", hue=("method.tau",)), _item_data(sweep)).figure
    ax = fig.axes[0]
    means = sorted(tuple(np.round(line.get_ydata(), 6)) for line in ax.get_lines() if len(line.get_xdata()) == 2)
    expected = sorted(tuple(np.round([np.mean([40.0 - p - s for s in (0, 1)]) for p in pts], 6)) for pts in ((0, 1), (2, 3)))
    assert means == expected


def test_heatmap_cells_are_means(sweep):
    fig = draw_spec(PlotSpec("heatmap", ("fid",), x="method.weight", hue=("method.tau",)), _item_data(sweep)).figure
    cells = sorted(float(t.get_text()) for t in fig.axes[0].texts)
    assert cells == sorted(np.mean([fid_of(p, s) for s in (0, 1)]) for p in range(4))


def test_heatmap_read_at_a_threshold_takes_each_runs_first_evaluation_below_it(sweep):
    """Fig. 4's protocol: y where the curve of ``on`` first reaches the threshold. latent_swd =
    1.5 + 0.5·point + 0.1·seed at epoch 1 and 1.333... + the same at epoch 2; at 1.55 only
    point 0 reaches it: seed 0 at epoch 1 (image_swd 150), seed 1 at epoch 2 (143.3)."""
    spec = PlotSpec("heatmap", ("image_swd",), x="method.weight", hue=("method.tau",),
                    read_at=ReadAt("latent_swd", (("paper_temperature", 1.55),)))
    out = draw_spec(spec, _item_data(sweep))
    assert [t.get_text() for t in out.figure.axes[0].texts] == [f"{(150 + 100 * (1 + 0.1 + 1 / 3)) / 2:.3g}"]
    assert any("image_swd at each run's first evaluation with latent_swd ≤ 1.55 in paper_temperature "
               "(reached by 2 of 8 runs, at epochs 1, 2)" in n for n in out.notes)
    assert any("0-2 runs (seeds) per cell" in n and "no seed reached the threshold" in n for n in out.notes)
    final = draw_spec(PlotSpec("heatmap", ("image_swd",), x="method.weight", hue=("method.tau",),
                               read_at=ReadAt("latent_swd", (("another_sweep", 1.55),))), _item_data(sweep))
    assert len(final.figure.axes[0].texts) == 4  # a sweep without a threshold is read at its final epoch


def test_curves_band_is_the_t_interval(sweep):
    fig = draw_spec(PlotSpec("curves", ("latent_swd",), hue=("method.tau", "method.weight")), _item_data(sweep)).figure
    ax = fig.axes[0]
    expected = [np.mean([curve_of(0, s, e) for s in (0, 1)]) for e in (0, 1, 2)]
    assert any(np.allclose(line.get_ydata(), expected) for line in ax.get_lines())
    assert t_half_width([1.0, 3.0]) == pytest.approx(T_1 * np.sqrt(2) / np.sqrt(2))


def test_bar_and_bad_names(sweep, capsys):
    assert main([str(sweep), "--kind", "bar", "--y", "fid", "--x", "method.tau"]) == 0
    assert (sweep / "plots" / "bar-fid-vs-method_tau-by-method_weight.png").is_file()
    assert main([str(sweep), "--y", "fdi"]) == 2
    assert "unknown metric 'fdi' (did you mean 'fid'?)" in capsys.readouterr().err
    assert main([str(sweep), "--x", "method.taux"]) == 2
    assert "did you mean 'method.tau'" in capsys.readouterr().err
    assert main([str(sweep.parent / "nothing")]) == 2


def test_plots_that_differ_never_share_a_file(sweep, capsys):
    """A plot with --col (or --style, log axes) gets its own name; it once overwrote the default
    plot drawn just before (issue 19)."""
    assert main([str(sweep)]) == 0
    default = sweep / "plots" / "curves-fid-by-method_tau.png"
    before = default.read_bytes()
    assert main([str(sweep), "--col", "method.weight"]) == 0
    assert main([str(sweep), "--logy"]) == 0
    assert default.read_bytes() == before
    names = sorted(p.name for p in (sweep / "plots").glob("*.png"))
    assert names == ["curves-fid-by-method_tau-col-method_weight.png", "curves-fid-by-method_tau-logy.png",
                     "curves-fid-by-method_tau.png"]
