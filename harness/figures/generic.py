"""Plots and tables of any sweep from a :class:`PlotSpec` (``python -m harness.plot``).

One machinery for a user's own study and for the paper's figures: a spec names the metric(s)
``y``, the x axis (``epoch`` for curves over training, or a config key), the keys drawn as
legend entries (``hue``), line styles (``style``) and panels (``col``), and the kind:

``curves``   y per epoch, one line per hue value (from ``curves.csv`` / metrics.jsonl);
``line``     final y against a varied key x, one line per hue value;
``heatmap``  mean final y over hue (rows) × x (columns), one panel per value of other keys;
``bar``      mean final y per value of x (bars), one colour per hue value;
``table``    mean final y per combination of the varied keys (Markdown, LaTeX, CSV).

Every plotted value is the **mean over seeds** with the 95 % Student's t interval of
:mod:`harness.figures.plots` (``t_interval``: band, error bar, or ``± half-width`` in tables).
A key that varies in the sweep but is not named in the spec (and is not ``seed``) is never
averaged over silently: it joins the legend (curves, line, bar, table) or splits the panels
(heatmap), and the caption says so. Only runs whose status is ``done`` are used. Captions
state the sweep, its scale (dataset, architecture, epochs, data limits), the number of runs
per point, and the settings of each metric (:data:`METRIC_SETTINGS`).

The paper's registry (:mod:`harness.figures.registry`) uses the same function,
:func:`draw_spec`, for the figures that are plots of logged metrics (Figs. 2, 4, 10).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.stats

from harness.collect import RUN_COLUMNS, STATE_COLUMNS
from harness.figures.base import (
    FigureOut, ItemData, TableOut, config_values, extra_keys, feature_note, group_label, group_title, label_of,
    metric_label, raise_data_error, seeds_text, value_text,
)
from harness.figures.plots import BAND, ERRORBAR, _lines, _new
from harness.figures.results import SweepResults, read_at_threshold

KINDS = ("curves", "line", "heatmap", "bar", "table")
EPOCH = "epoch"
# the metric settings a caption states, by metric column (each evaluator declares its settings in its file,
# harness/evaluators/); the feature network's own (Inception's dims and weights) are in its space's label
# (inception-2048, with the weights' sha256), stated only for the network used (feature_note)
METRIC_SETTINGS = {
    "fid": ["eval.fid.features", "eval.fid.num_samples", "eval.fid.reference_samples", "eval.fid.split"],
    "kid": ["eval.fid.features", "eval.fid.num_samples", "eval.fid.reference_samples", "eval.fid.split",
            "eval.fid.kid_subsets", "eval.fid.kid_subset_size"],
    **{m: ["eval.prdc.features", "eval.prdc.k", "eval.prdc.num_samples", "eval.split"]
       for m in ("precision", "recall", "density", "coverage")},
    "knn_acc": ["eval.knn.k", "eval.knn.num_train", "eval.knn.num_test", "eval.split"],
    "image_swd": ["eval.swd.mode", "eval.swd.num_images", "eval.swd.split"],
    "latent_swd": ["eval.num_samples", "eval.projections", "eval.seed"],
    "latent_sphere_swd": ["eval.num_samples", "eval.projections", "eval.seed"],
    "test_recon": ["data.test_limit"],
}
TRAINING_COLUMNS = {"loss", "recon", "reg", "lr", "epoch_time_s"}  # logged by the trainer every epoch
# bookkeeping, never offered as a metric: runs.csv's own columns (harness.collect) and the step counters
NOT_METRICS = {*RUN_COLUMNS, *STATE_COLUMNS, "epoch", "step", "eval_time_s", "fid_n"}


@dataclass(frozen=True)
class ReadAt:
    """Read y at each run's first evaluation with ``on`` ≤ the sweep's threshold (the paper's
    "trained until the reconstruction error reaches ..."), per sweep name; a sweep not listed
    is read at its final epoch."""

    on: str
    thresholds: tuple[tuple[str, float], ...]  # (sweep name, threshold)

    def threshold_of(self, sweep: str) -> float | None:
        return dict(self.thresholds).get(sweep)


@dataclass(frozen=True)
class PlotSpec:
    """What to draw; see the module docstring for the kinds."""

    kind: str
    y: tuple[str, ...]
    x: str | None = None
    hue: tuple[str, ...] = ()
    style: str | None = None
    col: str | None = None
    logx: bool = False
    logy: bool = False
    panels: str = "metric"  # curves/line: one panel per metric ("metric") or per sweep ("sweep")
    titles: tuple[tuple[str, str], ...] = ()  # (metric, panel title) pairs
    ylabel: str | None = None  # "{metric}" is replaced by the metric's name
    panel_width: float = 5.2
    panel_height: float = 4.0
    notes: tuple[str, ...] = field(default=())  # extra caption lines
    read_at: "ReadAt | None" = None  # heatmap: y read where a curve first reaches a threshold, not at the end

    def title_of(self, metric: str) -> str | None:
        return dict(self.titles).get(metric)


def t_half_width(values) -> float:
    """Half-width of the 95 % Student's t interval of the mean (NaN for one value)."""
    x = np.asarray([v for v in values if v == v], dtype=float)
    if len(x) < 2:
        return float("nan")
    return float(scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))


def metric_columns(df: pd.DataFrame, config_keys: set[str]) -> list[str]:
    """The numeric metric columns of a runs/curves table (not ids, bookkeeping such as
    ``in_sweep``, flags or config keys). A metric whose values are all NaN is one (drawing it
    says so, :func:`_need`); a column with no value at all is not."""
    return [c for c in df.columns if c not in NOT_METRICS and c not in config_keys and "." not in c
            and pd.api.types.is_numeric_dtype(df[c]) and not pd.api.types.is_bool_dtype(df[c])
            and (df[c].notna().any() or df[c].dtype.kind == "f" and len(df))]


def finite(values) -> pd.Series:
    """The finite numbers of ``values`` (NaN, ±inf and non-numbers dropped)."""
    v = pd.to_numeric(pd.Series(values), errors="coerce")
    return v[np.isfinite(v)]


def dropped_notes(df: pd.DataFrame, metrics: list[str]) -> list[str]:
    """One caption line per metric with values that are not finite (left out of means, N and
    intervals)."""
    out = []
    for m in metrics:
        total = len(df[m]) if m in df.columns else 0
        dropped = total - len(finite(df[m])) if total else 0
        if dropped:
            out.append(f"{m}: {dropped} of {total} values not finite (NaN or infinite), left out; "
                       "N counts finite values only.")
    return out


def metric_notes(sweeps: list[SweepResults], metrics: list[str]) -> list[str]:
    """One caption line per metric: what it is measured on (its config settings, and for a
    metric measured in a feature space, that space: :func:`feature_note`; settings of a
    feature network that is not the one used are never stated)."""
    out = []
    for m in metrics:
        keys = METRIC_SETTINGS.get(m) or []
        if m in TRAINING_COLUMNS:
            out.append(f"{m}: the trainer's training-epoch mean.")
            continue
        for features in (k for k in keys if k.endswith(".features")):
            named = {flat[features] for s in sweeps for flat in s.done_configs() if flat.get(features) is not None}
            if len(named) > 1:
                raise_data_error(f"{m}: the runs use {features} = {', '.join(sorted(map(str, named)))}; "
                                 "plot them separately")
        out.append(f"{m}: {config_values(sweeps, [*keys, 'eval.every'])}{feature_note(sweeps, m)}.")
    return out


def scale_text(sweeps: list[SweepResults]) -> str:
    return config_values(sweeps, ["data.name", "model.arch", "train.epochs", "data.train_limit"])


def _frame(sweeps: list[SweepResults], curves: bool, read_at: ReadAt | None = None,
           metric: str = "") -> tuple[pd.DataFrame, list[str]]:
    """The done rows of all sweeps (a ``sweep`` column and key when there are several); with
    ``read_at``, ``metric`` is read where each run's curve first reaches its sweep's threshold."""
    frames, varied = [], []
    for s in sweeps:
        df = s.done_curves if curves else s.done_runs
        threshold = read_at.threshold_of(s.name) if read_at else None
        if threshold is not None:
            df = read_at_threshold(df, s.done_curves, metric, read_at.on, threshold)
        frames.append(df.assign(sweep=s.name))
        varied += [k for k in s.varied_keys if k not in varied]
    df = pd.concat(frames, ignore_index=True)
    return df, (["sweep", *varied] if len(sweeps) > 1 else varied)


def _read_at_note(read_at: ReadAt, sweeps: list[SweepResults], df: pd.DataFrame, metric: str) -> str:
    """Where the cells were read, per sweep: threshold, how many runs reached it, at which epochs."""
    parts = []
    for s in sweeps:
        threshold = read_at.threshold_of(s.name)
        if threshold is None:
            parts.append(f"{s.name}: final epoch")
            continue
        part = df[df["sweep"] == s.name]  # _frame names every row's sweep
        reached = part["threshold_epoch"].dropna()
        epochs = ", ".join(str(int(e)) for e in sorted(reached.unique())) or "none"
        parts.append(f"{read_at.on} ≤ {threshold:g} in {s.name} (reached by {len(reached)} of {len(part)} runs, "
                     f"at epochs {epochs})")
    return f"{metric} at each run's first evaluation with {'; '.join(parts)}"


def _need(df: pd.DataFrame, columns: list[str], where: str) -> None:
    missing = [c for c in columns if c not in df.columns or df[c].isna().all() and df[c].dtype.kind != "f"]
    if missing:
        raise_data_error(f"{where}: no values for {', '.join(missing)} in the done runs")
    not_finite = [c for c in columns if pd.api.types.is_numeric_dtype(df[c]) and not len(finite(df[c]))]
    if not_finite:
        raise_data_error(f"{where}: every value of {', '.join(not_finite)} in the done runs is NaN or infinite "
                         f"({len(df)} rows)")


def draw_spec(spec: PlotSpec, d: ItemData) -> FigureOut | TableOut:
    """Draw ``spec`` from the item's sweeps (the only entry point of this module's drawing)."""
    if spec.kind not in KINDS:
        raise ValueError(f"kind {spec.kind!r}; allowed: {', '.join(KINDS)}")
    return {"curves": _curves, "line": _curves, "heatmap": _heatmap, "bar": _bar, "table": _table}[spec.kind](spec, d)


def _style_column(df: pd.DataFrame, style: str | None) -> tuple[pd.DataFrame, str | None]:
    if style is None:
        return df, None
    name = label_of(style)
    return df.assign(**{name: df[style].map(value_text)}), name


def _curves(spec: PlotSpec, d: ItemData) -> FigureOut:
    curves = spec.kind == "curves"
    x = EPOCH if curves else spec.x
    named = [k for k in (*spec.hue, spec.style, spec.col) if k]
    if spec.panels == "sweep":
        groups = [(s, [s]) for s in d.sweeps]
    else:
        groups = [(None, d.sweeps)]
    panels, notes, counted = [], [], []
    for s, sweeps in groups:
        df, varied = _frame(sweeps, curves)
        present = [m for m in spec.y if m in df.columns and df[m].notna().any()]
        for m in spec.y:
            if m not in present:
                notes.append(f"{'/'.join(x.name for x in sweeps)}: no values for {m}; left out")
        if not present:
            continue
        _need(df, [x, *named], "/".join(x.name for x in sweeps))
        keys = list(spec.hue) + extra_keys(df, varied, [*spec.hue, *([spec.style] if spec.style else []),
                                                        *([spec.col] if spec.col else []), *([] if curves else [x])])
        df, style = _style_column(df, spec.style)
        cols = [None] if spec.col is None else sorted(df[spec.col].dropna().unique(), key=str)
        for metric in present if spec.panels == "metric" else present[:1]:
            for cv in cols:
                part = df if cv is None else df[df[spec.col] == cv]
                panels.append((s, metric, cv, part, keys, style))
        counted.append((df, keys, style))
    if not panels:
        raise_data_error("; ".join(notes) or "nothing to draw")
    fig, axes = _new(len(panels), width=spec.panel_width, height=spec.panel_height)
    for ax, (s, metric, cv, part, keys, style) in zip(axes, panels):
        _lines(ax, part, x, metric, keys, style=style, integer_x=curves)
        if spec.logy:
            ax.set_yscale("log")
        if spec.logx:
            ax.set_xscale("log")
            ax.set_xlabel(f"{label_of(x)} (log scale)")
        elif not curves:
            ax.set_xlabel(label_of(x))
        ax.set_ylabel((spec.ylabel or ("{metric} (log scale)" if spec.logy else "{metric}"))
                      .replace("{metric}", metric_label(d.sweeps, metric)))
        if s is not None:
            ax.set_title(f"{s.name}: {d.scales[s.name]}, {config_values([s], ['data.name']).split(' = ', 1)[1]}",
                         fontsize=9)
        elif spec.title_of(metric) or cv is not None:
            title = spec.title_of(metric) or metric
            ax.set_title(title + (f" ({label_of(spec.col)}={value_text(cv)})" if cv is not None else ""))
    what = "per epoch (epoch 0 = initialisation)" if curves else f"after the last epoch, against {label_of(x)}"
    for df, keys, style in counted:
        extras = [k for k in keys if k not in spec.hue]
        if extras:
            notes.append(f"also varied, shown in the legend (not averaged): {', '.join(label_of(k) for k in extras)}.")
        per = [*keys, *([style] if style else []), *([spec.col] if spec.col else []), x]
        notes.append(f"{BAND}; {seeds_text(df, per)}.")
    notes = [f"y: {', '.join(spec.y)} {what}.", *metric_notes(d.sweeps, list(spec.y)), *notes, *spec.notes]
    return FigureOut(fig, list(dict.fromkeys(notes)))


def _heatmap(spec: PlotSpec, d: ItemData) -> FigureOut:
    import seaborn as sns

    metric = spec.y[0]
    row, col = spec.hue[0], spec.x
    df, varied = _frame(d.sweeps, curves=False, read_at=spec.read_at, metric=metric)
    where = _read_at_note(spec.read_at, d.sweeps, df, metric) if spec.read_at else f"the final {metric}"
    _need(df, [metric, row, col], d.item.id)
    extras = extra_keys(df, varied, [row, col])
    labels = group_label(df, extras) if extras else pd.Series(["all runs"] * len(df), index=df.index)
    fig, axes = _new(labels.nunique(), width=spec.panel_width, height=spec.panel_height)
    notes = []
    for ax, (label, part) in zip(axes, df.groupby(labels, sort=True)):
        summary = part.groupby([row, col], dropna=False).agg(mean=(metric, "mean"), runs=(metric, "count")).reset_index()
        grid = summary.pivot(index=row, columns=col, values="mean").sort_index().sort_index(axis=1)
        grid.index = [value_text(v) for v in grid.index]
        grid.columns = [value_text(v) for v in grid.columns]
        read = f"at {spec.read_at.on} ≤ threshold, " if spec.read_at else ""
        sns.heatmap(grid, annot=True, fmt=".3g", cmap="viridis_r", ax=ax,
                    cbar_kws={"label": f"{metric_label(d.sweeps, metric)} ({read}mean over seeds)"})
        ax.set_xlabel(label_of(col))
        ax.set_ylabel(label_of(row))
        ax.set_title(f"{label} ({d.title_scale})" if extras else f"{metric_label(d.sweeps, metric)} ({d.title_scale})",
                     fontsize=9)
        notes.append(f"{label}: {int(summary['runs'].min())}-{int(summary['runs'].max())} runs (seeds) per cell; "
                     "empty cells: not run or not done"
                     + (", or no seed reached the threshold." if spec.read_at else "."))
    if extras:
        notes.append(f"also varied, one panel per value (not averaged): {', '.join(label_of(k) for k in extras)}.")
    notes = [f"Cells: mean over seeds of {where} over {label_of(row)} × {label_of(col)}.",
             *metric_notes(d.sweeps, [metric]), *notes, *spec.notes]
    return FigureOut(fig, notes)


def _bar(spec: PlotSpec, d: ItemData) -> FigureOut:
    import seaborn as sns

    df, varied = _frame(d.sweeps, curves=False)
    x = spec.x or (spec.hue[0] if spec.hue else None)
    hue = [k for k in spec.hue if k != x]
    _need(df, [*spec.y, *([x] if x else []), *hue], d.item.id)
    keys = hue + extra_keys(df, varied, [*([x] if x else []), *hue])
    df = df.assign(_x=df[x].map(value_text) if x else "all runs", _hue=group_label(df, keys, values_only=True))
    fig, axes = _new(len(spec.y), width=spec.panel_width, height=spec.panel_height)
    for ax, metric in zip(axes, spec.y):
        sns.barplot(data=df, x="_x", y=metric, hue="_hue" if keys else None, errorbar=ERRORBAR, capsize=0.15, ax=ax)
        ax.set_xlabel(label_of(x) if x else "")
        ax.set_ylabel(f"{metric_label(d.sweeps, metric)} (final epoch)")
        if spec.logy:
            ax.set_yscale("log")
        if ax.get_legend() is not None:
            ax.get_legend().set_title(group_title(keys))
            sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, title_fontsize=8, frameon=False)
    notes = [f"Bars: mean over seeds of the final {', '.join(spec.y)}; error bars: 95 % confidence interval of the "
             f"mean (Student's t over the seeds); {seeds_text(df, [*([x] if x else []), *keys])}.",
             *metric_notes(d.sweeps, list(spec.y)), *spec.notes]
    extras = [k for k in keys if k not in spec.hue]
    if extras:
        notes.append(f"also varied, shown in the legend (not averaged): {', '.join(label_of(k) for k in extras)}.")
    return FigureOut(fig, notes)


def summary_table(df: pd.DataFrame, keys: list[str], metrics: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(numbers, display) of mean, sd, 95 % t half-width and run count of ``metrics`` per ``keys``."""
    rows = []
    grouped = df.groupby(keys, dropna=False, sort=True) if keys else [((), df)]
    for values, part in grouped:
        values = values if isinstance(values, tuple) else (values,)
        row = dict(zip(keys, values))
        row["runs"] = int(part["id"].nunique())
        for m in metrics:
            v = finite(part[m])  # N, mean and interval over the finite values only
            row[f"{m}_n"] = len(v)
            row[f"{m}_mean"], row[f"{m}_sd"] = float(v.mean()) if len(v) else math.nan, float(v.std(ddof=1)) if len(v) > 1 else math.nan
            row[f"{m}_ci95"] = t_half_width(v)
        rows.append(row)
    data = pd.DataFrame(rows)

    def cell(m: str, r) -> str:
        mean, half = r[f"{m}_mean"], r[f"{m}_ci95"]
        if mean != mean:
            return "no finite value" if r["runs"] else "–"
        n = f" (N={int(r[f'{m}_n'])})" if r[f"{m}_n"] < r["runs"] else ""
        return f"{mean:.4g}" + (f" ± {half:.2g}" if half == half else "") + n

    display = pd.DataFrame({**{label_of(k): data[k].map(value_text) for k in keys},
                            **{m: [cell(m, r) for _, r in data.iterrows()] for m in metrics},
                            "runs": data["runs"]})
    return data, display


def _table(spec: PlotSpec, d: ItemData) -> TableOut:
    df, varied = _frame(d.sweeps, curves=False)
    named = [k for k in (spec.x, *spec.hue) if k]
    _need(df, [*spec.y, *named], d.item.id)
    keys = named + extra_keys(df, varied, named)
    data, display = summary_table(df, keys, list(spec.y))
    display = display.rename(columns={m: metric_label(d.sweeps, m) for m in spec.y})
    notes = [f"Cells: mean ± half-width of the 95 % confidence interval of the mean (Student's t over the seeds) "
             f"of the final value; runs = seeds per row.", *metric_notes(d.sweeps, list(spec.y)),
             *dropped_notes(df, list(spec.y)), *spec.notes]
    extras = [k for k in keys if k not in named]
    if extras:
        notes.append(f"also varied, one row per value (not averaged): {', '.join(label_of(k) for k in extras)}.")
    return TableOut(data, display, notes)


def spec_draw(spec: PlotSpec):
    """A registry ``draw`` function for ``spec`` (harness.figures.registry)."""

    def draw(d: ItemData):
        return draw_spec(spec, d)

    draw.spec = spec
    return draw


__all__ = ["KINDS", "PlotSpec", "ReadAt", "draw_spec", "spec_draw", "summary_table", "metric_columns"]
