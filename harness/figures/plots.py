"""Drawing helpers shared by every figure, and the paper's figures that are not plain plots of
logged metrics (Figs. 3, 7, 8, 9), drawn with seaborn on matplotlib's Agg. Figs. 2, 4 and 10
are :class:`harness.figures.generic.PlotSpec` uses of the same helpers (registry.py), the
machinery behind ``python -m harness.plot``.

Conventions shared by every figure:

* only runs whose status is ``done`` are drawn; curves and points are the **mean over seeds**
  with a **95 % confidence band** for that mean: Student's t interval, mean ± t₀.₉₇₅,ₙ₋₁ · s/√n
  over the n seeds (:func:`t_interval`, given to seaborn as ``errorbar``). It is exact under
  normal seed-to-seed noise, deterministic, and costs nothing, where seaborn's bootstrap
  takes 1,000 resamples per plotted point (minutes for an 80-epoch curve) and, with 2-3 seeds,
  cannot be wider than their range. With few seeds the band is honestly wide (t = 12.7 for
  two seeds, 4.3 for three). A point with one seed has no band, and each caption says how
  many seeds each point averages;
* a sweep key that varies besides the plotted ones and ``seed`` is never averaged over
  silently: it becomes part of the legend label (:func:`harness.figures.base.extra_keys`);
* the metric columns are the names the evaluators log (``harness/evaluators``): ``latent_swd``,
  ``latent_sphere_swd`` (``latent``), ``image_swd`` (``image_swd``), ``fid`` / ``fid_n``
  (``fid``), ``test_recon`` (``recon``), the trainer's ``recon`` (training epoch mean), and the
  artifacts ``latent_singular_values.jsonl`` (``latent``) and ``tsne.csv`` (``artifacts``:
  columns ``x``, ``y``, ``label``) in the run folders.
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")  # files only, never a display (also under SLURM / CI)

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402
import seaborn as sns  # noqa: E402

from harness.atomic import read_jsonl  # noqa: E402
from harness.figures.base import (  # noqa: E402
    FigureOut, ItemData, config_values, extra_keys, feature_note, group_label, group_title, label_of, metric_label,
    raise_data_error, require_columns, seeds_text, value_text,
)
from harness.figures.results import SweepResults  # noqa: E402
from harness.figures.tables import best_lambda  # noqa: E402

BAND = "lines: mean over seeds; band: 95 % confidence interval of the mean (Student's t over the seeds)"


def t_interval(values) -> tuple[float, float]:
    """The 95 % Student's t confidence interval of the mean of ``values`` (NaN-free)."""
    x = np.asarray(values, dtype=float)
    mean = float(x.mean())
    if len(x) < 2:
        return mean, mean
    half = float(scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return mean - half, mean + half


ERRORBAR = t_interval
SPECTRUM_FILE = "latent_singular_values.jsonl"  # harness/evaluators/latent.py
TSNE_FILE = "tsne.csv"  # harness/evaluators/artifacts.py
TSNE_COLUMNS = ["x", "y", "label"]
MAX_MARKED_POINTS = 30  # longer curves (e.g. 80 epochs) are drawn without point markers


def _dataset(s: SweepResults) -> str:
    return config_values([s], ["data.name"]).split(" = ", 1)[1]


def _lines(ax, df: pd.DataFrame, x: str, y: str, keys: list[str], style: str | None = None,
           integer_x: bool = False) -> None:
    """Mean and 95 % CI over seeds per x, one line per value of ``keys`` (× ``style``); legend beside."""
    df = df.assign(_curve=group_label(df, keys, values_only=True))
    dots = df[x].nunique() <= MAX_MARKED_POINTS
    sns.lineplot(data=df, x=x, y=y, hue="_curve", style=style, errorbar=ERRORBAR,
                 marker="o" if dots else None, markersize=4, ax=ax)
    if integer_x:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    legend = ax.get_legend()
    if legend is not None:
        title = group_title(keys)
        legend.set_title(title)
        for text in legend.get_texts():
            if text.get_text() == "_curve":
                text.set_text(title)
        sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title_fontsize=8, frameon=False)


def _new(ncols: int, width: float = 5.2, height: float = 4.0):
    fig, axes = plt.subplots(1, ncols, figsize=(width * ncols, height), squeeze=False)
    return fig, list(axes[0])


def _usable(d: ItemData, columns: list[str], hint: str, curves: bool) -> tuple[list[tuple[SweepResults, pd.DataFrame]], list[str]]:
    """(sweep, done rows) of the sweeps that logged ``columns``; notes for those that did not."""
    out, notes = [], []
    for s in d.sweeps:
        df = s.done_curves if curves else s.done_runs
        missing = [c for c in columns if c not in df.columns or df[c].isna().all()]
        if missing:
            notes.append(f"{s.folder}: no values for {', '.join(missing)} ({hint}); left out")
        else:
            out.append((s, df))
    if not out:
        raise_data_error("; ".join(notes))
    return out, notes


# Figs. 2, 4 and 10 are plots of logged metrics: PlotSpecs of harness.figures.generic (registry.py).


# ----------------------------------------------------------------------------- Fig. 3


def _final_spectrum(s: SweepResults, rid: str) -> list[float] | None:
    folder = s.run_folder(rid)
    if folder is None or not (folder / SPECTRUM_FILE).is_file():
        return None
    try:
        rows = read_jsonl(folder / SPECTRUM_FILE)
    except (OSError, ValueError):
        return None
    rows = [r for r in rows if isinstance(r, dict) and isinstance(r.get("singular_values"), list)]
    return max(rows, key=lambda r: r.get("epoch", -1))["singular_values"] if rows else None


def fig3(d: ItemData) -> FigureOut:
    """Singular values of the latent matrix of N training images, one curve per λ."""
    rows, notes = [], []
    for s in d.sweeps:
        runs = s.done_runs
        require_columns(runs, ["method.weight"], s.folder.name, "run configs needed")
        keys = ["method.weight"] + extra_keys(runs, s.varied_keys, ["method.weight"])
        lacking = 0
        for _, r in runs.iterrows():
            sv = _final_spectrum(s, r["id"])
            if sv is None:
                lacking += 1
                continue
            rows += [{**{k: r[k] for k in keys}, "id": r["id"], "index": i + 1, "singular value": v,
                      "n_rows": sum(x * x for x in sv), "dim": len(sv)} for i, v in enumerate(sv)]
        if lacking:
            notes.append(f"{s.folder}: {lacking} done runs lack {SPECTRUM_FILE} in their run folder "
                         f"(needs the run folders and eval.metrics with latent); left out")
    if not rows:
        raise_data_error("; ".join(notes) or "no singular values found")
    df = pd.DataFrame(rows).sort_values(["method.weight", "index"])
    keys = [k for k in df.columns if k not in ("id", "index", "singular value", "n_rows", "dim")]
    fig, (ax,) = _new(1, width=6.5)
    # unit-norm rows: Σ σ_i² = N exactly, so an isotropic latent has every σ_i = sqrt(N / d)
    shapes = set(zip(df["n_rows"].round().astype(int), df["dim"]))
    if len(shapes) == 1:
        (n_rows, dim), = shapes
        ax.axhline(math.sqrt(n_rows / dim), ls="--", c="gray", lw=1, label="isotropic: √(N/d)")
    else:
        notes.append(f"no isotropic guide line: the runs' (N, d) differ ({sorted(shapes)})")
    _lines(ax, df, "index", "singular value", keys, integer_x=True)
    ax.set_yscale("log")
    ax.set_xlabel("singular value index (descending)")
    notes += [f"Singular values of the N×d matrix of final-epoch latents (evaluator 'latent', {SPECTRUM_FILE}); "
              f"N = Σσ² = {df['n_rows'].round().astype(int).unique().tolist()}, d = {df['dim'].unique().tolist()}; "
              f"{config_values(d.sweeps, ['eval.num_samples'])} (first N training items).",
              f"{BAND}; {seeds_text(df, [*keys, 'index'])}."]
    return FigureOut(fig, notes)


# ----------------------------------------------------------------------------- Fig. 7


def _read_tsne(s: SweepResults, rid: str) -> pd.DataFrame | None:
    folder = s.run_folder(rid)
    if folder is None or not (folder / TSNE_FILE).is_file():
        return None
    try:
        df = pd.read_csv(folder / TSNE_FILE)
    except (OSError, ValueError):
        return None
    return df if all(c in df.columns for c in TSNE_COLUMNS) else None


FIG7_COLUMNS = 5


def fig7(d: ItemData) -> FigureOut:
    """t-SNE maps of test-set latents, one panel per method (the lowest seed of each)."""
    panels, notes = [], []
    for s in d.sweeps:
        runs = s.done_runs
        require_columns(runs, ["method.name"], s.folder.name, "run configs needed")
        keys = ["method.name"] + extra_keys(runs, s.varied_keys, ["method.name"])
        runs = runs.assign(panel=group_label(runs, keys))
        for label, part in runs.groupby("panel", sort=True):
            part = part.sort_values("seed") if "seed" in part.columns else part
            found = next(((r, t) for r, t in ((r, _read_tsne(s, r)) for r in part["id"]) if t is not None), None)
            if found is None:
                notes.append(f"{s.folder}: no readable {TSNE_FILE} (columns {', '.join(TSNE_COLUMNS)}) in the run "
                             f"folders of {label}; left out")
                continue
            row = part.set_index("id").loc[found[0]]
            seed = row.get("seed", "?")
            knn = row.get("knn_acc")  # the class structure as a number (evaluator `knn`), when logged
            knn_text = f", kNN acc {knn:.3f}" if isinstance(knn, float) and math.isfinite(knn) else ""
            panels.append((s, f"{label}, seed={value_text(seed)}{knn_text}", found[1]))
    if not panels:
        raise_data_error("; ".join(notes))
    # one row per sweep (scale), at most FIG7_COLUMNS panels a row, so that each map stays readable
    rows: list[list] = []
    for name in dict.fromkeys(p[0].name for p in panels):
        mine = [p for p in panels if p[0].name == name]
        rows += [mine[i:i + FIG7_COLUMNS] for i in range(0, len(mine), FIG7_COLUMNS)]
    ncols = max(len(r) for r in rows)
    fig, grid = plt.subplots(len(rows), ncols, figsize=(4.2 * ncols + 1.0, 4.2 * len(rows)), squeeze=False)
    legend_ax = grid[0][len(rows[0]) - 1]
    for r, row in enumerate(rows):
        for c in range(ncols):
            ax = grid[r][c]
            if c >= len(row):
                ax.set_visible(False)
                continue
            s, label, t = row[c]
            sns.scatterplot(data=t.assign(label=t["label"].astype(str)), x="x", y="y", hue="label", s=5,
                            linewidth=0, palette="tab10", ax=ax, legend=ax is legend_ax)
            ax.set_title(f"{label}\n{d.scales[s.name]}, {_dataset(s)}", fontsize=9)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlabel("")
            ax.set_ylabel("")
    if legend_ax.get_legend() is not None:
        sns.move_legend(legend_ax, "center left", bbox_to_anchor=(1.0, 0.5), title="class", markerscale=2)
    notes.append(f"t-SNE of test-set latents written by the artifacts evaluator ({TSNE_FILE}); "
                 f"{config_values(d.sweeps, ['eval.artifacts.tsne_points'])}; one run (the lowest seed) per panel.")
    return FigureOut(fig, notes)


# ----------------------------------------------------------------------------- Figs. 8, 9


def fig8(d: ItemData) -> FigureOut:
    """Final reconstruction loss vs λ (appendix D.1); test-set value when logged, else training."""
    frames, varied, notes = [], [], []
    for s in d.sweeps:
        runs = s.done_runs
        metric = next((c for c in ("test_recon", "recon") if c in runs.columns and runs[c].notna().any()), None)
        if metric is None:
            notes.append(f"{s.folder}: no test_recon or recon values; left out")
            continue
        frames.append(runs.assign(sweep=s.name, metric=metric, value=runs[metric]))
        varied += [k for k in s.varied_keys if k not in varied]
    if not frames:
        raise_data_error("; ".join(notes))
    runs = pd.concat(frames, ignore_index=True)
    require_columns(runs, ["method.weight", "method.name"], d.item.id, "run configs needed")
    keys = ["method.name"] + (["sweep"] if len(frames) > 1 else []) + extra_keys(runs, varied, ["method.name", "method.weight", "sweep"])
    metrics = sorted(runs["metric"].unique())
    fig, (ax,) = _new(1, width=6.5)
    _lines(ax, runs, "method.weight", "value", keys)
    ax.set_xscale("log")
    ax.set_xlabel("λ (log scale)")
    ax.set_ylabel(" / ".join(metrics) + " (per-image squared error, summed over pixels)")
    which = {"test_recon": "test-set reconstruction error (evaluator 'recon')",
             "recon": "training reconstruction term, mean over the last epoch (trainer)"}
    notes += [f"y: {'; '.join(which[m] for m in metrics)}.", f"{BAND}; {seeds_text(runs, [*keys, 'method.weight'])}."]
    return FigureOut(fig, notes)


def fig9(d: ItemData) -> FigureOut:
    """FID vs λ for each input size (appendix D.2); the lowest mean per size is starred."""
    usable, notes = _usable(d, ["fid", "data.image_size", "method.weight"], "eval.metrics must include fid", curves=False)
    s, runs = usable[0]
    extras = extra_keys(runs, s.varied_keys, ["data.image_size", "method.weight"])
    keys = ["data.image_size"] + extras
    _, best = best_lambda(runs, "data.image_size", extras)
    fig, (ax,) = _new(1, width=6.5)
    ax.scatter(best["method.weight"], best["fid_mean"], marker="*", s=160, c="k", zorder=5, label="best λ per size")
    _lines(ax, runs, "method.weight", "fid", keys)
    ax.set_xscale("log")
    ax.set_xlabel("λ (log scale)")
    ax.set_ylabel(f"{metric_label(d.sweeps, 'fid', 'FID', per='data.image_size')} (final epoch)")
    notes += [f"FID per λ and input size; FID is not comparable across sizes (appendix D.2); "
              f"{config_values(d.sweeps, ['eval.fid.num_samples', 'eval.fid.split'])}"
              f"{feature_note(d.sweeps, 'fid', per='data.image_size')}.",
              f"{BAND}; {seeds_text(runs, [*keys, 'method.weight'])}. Table 4 lists the starred λ."]
    return FigureOut(fig, notes)


__all__ = ["fig3", "fig7", "fig8", "fig9"]
