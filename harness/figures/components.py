"""MoCA's components as ablations (beyond the paper): the table and figure of
``sweeps/moca_components.yaml``.

One row (table) or one point per panel (figure) for each case of the study: MoCA, MoCA with
in-batch negatives, with online keys, with m = 0, Wang & Isola's uniformity loss with and
without a queue, WAE-MMD and the plain autoencoder (the equations are in the sweep file and
in ``harness/methods/moca.py`` / ``harness/methods/uniformity.py``). Each metric is the value logged after the
last epoch of each *done* run, summarised over seeds as mean ± sample sd (table) or mean with a
95 % Student's t interval and the individual seeds (figure). Time per step is the mean
``epoch_time_s`` over a run's epochs divided by its steps per epoch (training only, no
evaluation). Only metrics some run logged are shown.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.figures.base import (  # noqa: E402
    FigureOut, ItemData, TableOut, config_values, metric_label, raise_data_error, spaces_sentence,
)
from harness.figures.plots import t_interval  # noqa: E402

# (column, label, which direction is better) in display order; the columns the evaluators log
METRICS = [
    ("fid", "FID", "lower"),
    ("precision", "precision", "higher"),
    ("recall", "recall", "higher"),
    ("knn_acc", "kNN accuracy", "higher"),
    ("image_swd", "image SWD", "lower"),
    ("latent_uniformity", "latent uniformity", "lower"),
    ("latent_sphere_swd", "latent sphere SWD", "lower"),
    ("test_recon", "test reconstruction", "lower"),
    ("ms_per_step", "ms / step", "lower"),
]
CASE = "case"


def _get(row: pd.Series, key: str, default=None):
    v = row.get(key, default)
    return default if v is None or (isinstance(v, float) and math.isnan(v)) else v


def case_label(row: pd.Series) -> str:
    """A readable name of a run's case from its config columns (defaults: the paper's MoCA)."""
    name = _get(row, "method.name", "?")
    if name == "moca":
        parts = []
        if _get(row, "method.negatives", "queue") == "batch":
            parts.append("in-batch negatives")
        else:
            parts.append(f"queue K={_get(row, 'method.queue_size', 10000):g}")
        if _get(row, "method.key_encoder", "momentum") == "online":
            parts.append("online keys")
        else:
            parts.append(f"m={_get(row, 'method.momentum', 0.999):g}")
        if _get(row, "method.key_bn", "batch") == "shuffle":
            parts.append(f"shuffle-BN×{_get(row, 'method.key_bn_groups', 2):g}")
        return "MoCA (" + ", ".join(parts) + ")"
    if name == "uniformity":
        k = _get(row, "method.queue_size", 0)
        return "uniformity (batch" + (f" + queue K={k:g})" if k else ")")
    return {"mmd": "WAE-MMD", "none": "AE (no regularizer)", "svae": "S-VAE"}.get(name, str(name))


def _runs(d: ItemData) -> pd.DataFrame:
    frames = []
    for s in d.sweeps:
        runs = s.done_runs.copy()
        curves = s.done_curves
        if "epoch_time_s" in curves.columns and {"epoch", "step"} <= set(curves.columns):
            train = curves[curves["epoch"] >= 1].dropna(subset=["epoch_time_s"])
            per = train.groupby("id").agg(t=("epoch_time_s", "mean"), steps=("step", "max"), epochs=("epoch", "max"))
            ms = 1e3 * per["t"] / (per["steps"] / per["epochs"])
            runs["ms_per_step"] = runs["id"].map(ms)
        frames.append(runs)
    runs = pd.concat(frames, ignore_index=True)
    if runs.empty:
        raise_data_error("no done runs")
    runs[CASE] = runs.apply(case_label, axis=1)
    return runs


def _metrics(runs: pd.DataFrame) -> list[tuple[str, str, str]]:
    out = [m for m in METRICS if m[0] in runs.columns and runs[m[0]].notna().any()]
    if not out:
        raise_data_error("none of the study's metrics was logged: " + ", ".join(m[0] for m in METRICS))
    return out


def _order(runs: pd.DataFrame) -> list[str]:
    """Cases in the order of the sweep's runs (the study's own order: MoCA first)."""
    return list(dict.fromkeys(runs[CASE]))


def _units(d: ItemData, metrics: list[tuple]) -> list[tuple]:
    """The metrics with their feature space in the label (``FID [lenet-128]``)."""
    return [(col, metric_label(d.sweeps, col, label), better) for col, label, better in metrics]


def _notes(d: ItemData) -> list[str]:
    spaces = spaces_sentence(d.sweeps, [m for m, _, _ in METRICS])
    return [
        "Beyond the paper: MoCA's components as ablations, all through the one trainer "
        "(sweeps/moca_components.yaml states each case's equation).",
        "Values after the last epoch; mean ± sample sd over the done runs (seeds) of each case.",
        config_values(d.sweeps, ["data.name", "data.train_limit", "model.arch", "model.latent_dim",
                                 "method.weight", "train.epochs", "eval.num_samples", "eval.swd.mode",
                                 "eval.swd.num_images"]) + ".",
        "ms / step: training time per optimiser step on a shared machine (noisy); bench/step_time.py "
        "gives interleaved ratios.",
        *([f"Measured {spaces}."] if spaces else []),
    ]


def components_table(d: ItemData) -> TableOut:
    runs = _runs(d)
    metrics = _units(d, _metrics(runs))
    rows, display = [], []
    for case in _order(runs):
        part = runs[runs[CASE] == case]
        row, shown = {CASE: case, "runs": int(part["id"].nunique())}, {CASE: case}
        for col, label, better in metrics:
            x = part[col].dropna().astype(float)
            row[f"{col}_mean"] = float(x.mean()) if len(x) else np.nan
            row[f"{col}_sd"] = float(x.std(ddof=1)) if len(x) > 1 else np.nan
            text = "–" if not len(x) else f"{x.mean():.4g}" + (f" ± {x.std(ddof=1):.2g}" if len(x) > 1 else "")
            shown[f"{label} ({better} is better)"] = text
        shown["runs"] = str(row["runs"])
        rows.append(row)
        display.append(shown)
    return TableOut(pd.DataFrame(rows), pd.DataFrame(display), _notes(d))


def components_figure(d: ItemData) -> FigureOut:
    runs = _runs(d)
    metrics = _units(d, _metrics(runs))
    order = _order(runs)
    ncols = min(3, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.6 * ncols, 0.45 * len(order) * nrows + 1.2 * nrows),
                             squeeze=False, sharey=True)
    y = np.arange(len(order))
    for ax, (col, label, better) in zip(axes.flat, metrics):
        for i, case in enumerate(order):
            x = runs.loc[runs[CASE] == case, col].dropna().astype(float).to_numpy()
            if not len(x):
                continue
            lo, hi = t_interval(x)
            ax.plot([lo, hi], [i, i], color="C0", lw=2, alpha=0.5)
            ax.plot([x.mean()], [i], "o", color="C0", ms=6)
            ax.plot(x, np.full(len(x), i + 0.18), "|", color="k", ms=6, alpha=0.7)
        ax.set_title(f"{label} ({better} is better)", fontsize=9)
        ax.grid(axis="x", alpha=0.3)
        ax.set_yticks(y)
        ax.set_yticklabels(order, fontsize=8)
    axes.flat[0].invert_yaxis()  # shared: the first case on top in every panel
    for ax in list(axes.flat)[len(metrics):]:
        ax.set_visible(False)
    fig.suptitle(f"MoCA's components (beyond the paper), {d.title_scale}", fontsize=10)
    fig.tight_layout()
    notes = _notes(d) + ["Dot: mean over seeds; bar: 95 % Student's t interval of the mean; ticks: the seeds."]
    return FigureOut(fig, notes)
