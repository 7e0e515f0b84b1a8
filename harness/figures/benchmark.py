"""The equal-budget benchmark (issue 12, docs/sweeps.md "Search"): budget curves and the test table.

A sweep with a ``search`` section writes ``results/<sweep>/search.json`` (the stage of every
run, each trial's final validation metric and training time, the selected trial per method;
:mod:`harness.sweep.search`). From it and the sweep's runs:

* ``bench_budget``: per method, the best validation metric found among k trials against k,
  as in Lucic et al. (2018, Fig. 4): the trials are put in R = 1,000 random orders (seeded) and
  the line is the mean over orders of the best-so-far value after k trials, the band the 2.5 and
  97.5 percentiles over orders. Diverged trials and trials without the metric count as trials
  but never improve the best; an order whose first trials all failed has no value yet and is
  left out at that k (the caption gives the count of such trials);
* ``bench_time``: the same best-so-far value against the cumulative *training* time of the
  trials run so far (the sum of ``epoch_time_s``, evaluation excluded), so that methods are also
  compared at equal wall-clock; on a grid of times, per order the best among the trials
  finished by then; drawn where at least 95 % of the orders have finished a trial;
* ``bench_table``: per method, the selected settings and their validation value, then the
  test metric of the tuned runs (mean ± 95 % Student-t interval over the seeds) beside the
  same metric of the runs at the fixed setting (the paper's "same λ" comparison); the caption
  compares MoCA with WAE-MMD (difference of means and Welch's t-test over seeds).
"""

from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import LogLocator, MaxNLocator, NullFormatter, ScalarFormatter  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import scipy.stats  # noqa: E402

from harness.figures.base import (  # noqa: E402
    FigureOut, ItemData, TableOut, config_values, feature_note, metric_label, raise_data_error, spaces_sentence,
    value_text,
)
from harness.figures.results import SweepResults  # noqa: E402
from harness.figures.tables import METHOD_NAMES  # noqa: E402
from harness.naming import short_labels  # noqa: E402
from harness.run_folder import FIXED, SEARCH_FILE, TUNED, read_json_file  # noqa: E402

ORDERINGS = 1000
ORDER_SEED = 0
TIME_GRID = 200


def method_label(name: str) -> str:
    return METHOD_NAMES.get(name, name)


def read_search(s: SweepResults) -> dict:
    """``search.json`` of a sweep, or an :class:`ItemDataError` saying why there is none."""
    record = read_json_file(s.folder / SEARCH_FILE)
    if not isinstance(record, dict) or not isinstance(record.get("trials"), dict):
        raise_data_error(f"{s.folder / SEARCH_FILE}: missing or unreadable (written by a sweep with a "
                         "search section, python -m harness.sweep)")
    return record


def orderings(n: int, r: int = ORDERINGS, seed: int = ORDER_SEED) -> np.ndarray:
    """``r`` random permutations of ``range(n)`` (rows), from a fixed seed."""
    rng = np.random.default_rng(seed)
    return np.stack([rng.permutation(n) for _ in range(r)]) if n else np.zeros((r, 0), dtype=int)


def best_so_far(values: np.ndarray, order: np.ndarray, mode: str) -> np.ndarray:
    """Row-wise best of ``values[order]`` over the first k entries (NaN = no value, never best)."""
    v = values[order]
    acc = np.fmin.accumulate if mode == "min" else np.fmax.accumulate
    return acc(v, axis=1)


def budget_curve(values, mode: str, r: int = ORDERINGS, seed: int = ORDER_SEED) -> pd.DataFrame:
    """k = 1..n: mean, 2.5 and 97.5 percentiles over random orders of the best after k trials,
    and the fraction of orders that have a value at k."""
    v = np.asarray(values, dtype=float)
    best = best_so_far(v, orderings(len(v), r, seed), mode)
    rows = []
    for k in range(best.shape[1]):
        col = best[:, k]
        ok = col[~np.isnan(col)]
        rows.append({"trials": k + 1, "mean": ok.mean() if len(ok) else np.nan,
                     "low": np.percentile(ok, 2.5) if len(ok) else np.nan,
                     "high": np.percentile(ok, 97.5) if len(ok) else np.nan, "have": len(ok) / len(col)})
    return pd.DataFrame(rows)


def time_curve(values, times, mode: str, grid: np.ndarray, r: int = ORDERINGS, seed: int = ORDER_SEED) -> pd.DataFrame:
    """At each time of ``grid``: mean and 2.5/97.5 percentiles over random orders of the best
    among the trials whose cumulative training time (in that order) is <= t."""
    v, t = np.asarray(values, dtype=float), np.asarray(times, dtype=float)
    order = orderings(len(v), r, seed)
    best = best_so_far(v, order, mode)
    ends = np.cumsum(t[order], axis=1)
    done = np.stack([np.searchsorted(row, grid, side="right") for row in ends])  # trials finished by t
    rows = []
    for j, g in enumerate(grid):
        k = done[:, j]
        vals = np.where(k > 0, best[np.arange(len(k)), np.maximum(k - 1, 0)], np.nan)
        ok = vals[~np.isnan(vals)]
        rows.append({"time_s": g, "mean": ok.mean() if len(ok) else np.nan,
                     "low": np.percentile(ok, 2.5) if len(ok) else np.nan,
                     "high": np.percentile(ok, 97.5) if len(ok) else np.nan, "have": len(ok) / len(k)})
    return pd.DataFrame(rows)


def methods_of(record: dict) -> list[str]:
    """The methods in the sweep file's order (older records: as stored)."""
    stored = list(record["trials"])
    order = [m for m in record.get("methods", []) if m in stored]
    return order + [m for m in stored if m not in order]


def settings_text(chosen: dict) -> str:
    """``weight=12.3, optim.lr=0.001, method.lr=0.0005``: short labels unless two would clash."""
    values = chosen.get("values", {})
    keys = [k for k in chosen.get("keys", []) if k in values] + [k for k in values if k not in chosen.get("keys", [])]
    labels = short_labels(keys)
    return ", ".join(f"{labels[k]}={value_text(values[k])}" for k in keys)


def _trials(record: dict) -> dict[str, pd.DataFrame]:
    out = {}
    for method in methods_of(record):
        df = pd.DataFrame(record["trials"][method])
        if not df.empty:
            out[method] = df
    return out


def _diverged_note(trials: dict[str, pd.DataFrame], metric: str) -> str:
    bad = {m: int(df["value"].isna().sum()) for m, df in trials.items() if df["value"].isna().any()}
    if not bad:
        return f"Every trial logged a finite final '{metric}'."
    return ("Trials without a finite final value (diverged, failed or not done; they count as trials "
            "but never improve the best): " + ", ".join(f"{method_label(m)} {n}" for m, n in bad.items()) + ".")


def _overrides_note(record: dict) -> str:
    sets = record.get("overrides") or []
    if not sets:
        return ""
    return (" REDUCED / CHANGED from the sweep file by the command line: "
            + ", ".join(f"--set {x}" for x in sets) + ".")


def _curve_panel(ax, d: ItemData, s: SweepResults, x_of: str) -> list[str]:
    record = read_search(s)
    metric, mode = record["metric"], record["mode"]
    trials = _trials(record)
    if not trials:
        raise_data_error(f"{s.folder / SEARCH_FILE}: no trials recorded")
    colors = plt.get_cmap("tab10")
    for i, (method, df) in enumerate(trials.items()):
        values = df["value"].to_numpy(dtype=float)
        if x_of == "trials":
            c = budget_curve(values, mode)
            x = c["trials"]
        else:
            times = df["train_time_s"].fillna(0.0).to_numpy(dtype=float)
            grid = np.linspace(0.0, float(times.sum()), TIME_GRID + 1)[1:]
            c = time_curve(values, times, mode, grid)
            c = c[c["have"] >= 0.95]
            x = c["time_s"] / 60.0
        marker = "o" if (x_of == "trials" and len(c) <= 30) or len(c) <= 3 else None
        ax.plot(x, c["mean"], color=colors(i % 10), marker=marker, markersize=3,
                drawstyle="default" if x_of == "trials" else "steps-post",
                label=f"{method_label(method)} ({len(df)} trial{'s' if len(df) != 1 else ''})")
        ax.fill_between(x, c["low"], c["high"], color=colors(i % 10), alpha=0.15, lw=0,
                        step=None if x_of == "trials" else "post")
    if x_of == "trials":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("number of trials (random search)" if x_of == "trials"
                  else "cumulative training time of the trials (min, one process)")
    ax.set_ylabel(f"best validation {metric_label([s], metric)} so far ({'lower' if mode == 'min' else 'higher'} "
                  "is better)")
    finite = pd.concat([df["value"] for df in trials.values()]).dropna()
    if len(finite) and finite.min() > 0 and finite.max() / finite.min() > 5:  # spans most of a decade or more
        ax.set_yscale("log")
        ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))  # labelled 100, 200, 500, ...
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{s.name}: {d.scales[s.name]}, {config_values([s], ['data.name']).split(' = ', 1)[1]}", fontsize=9)
    return [f"{s.name}: selection metric: final '{metric}' on the validation split (held out of training; "
            f"{config_values([s], ['data.val_size', 'data.val_seed'])}), mode {mode}; budget "
            f"{record.get('budget')} trials per method, search seed {record.get('search_seed')}"
            f"{feature_note([s], metric)}. " + _diverged_note(trials, metric) + _overrides_note(record)]


def _curve_figure(d: ItemData, x_of: str) -> FigureOut:
    fig, axes = plt.subplots(1, len(d.sweeps), figsize=(7.4 * len(d.sweeps), 4.4), squeeze=False)
    notes: list[str] = []
    for ax, s in zip(axes[0], d.sweeps):
        notes += _curve_panel(ax, d, s, x_of)
    notes.append(f"Line: mean over {ORDERINGS} random orders of the trials (seed {ORDER_SEED}) of the best value "
                 "so far; band: 2.5-97.5 percentiles over the orders (Lucic et al. 2018).")
    if x_of == "time":
        notes.append("Training time: the sum of epoch_time_s of each trial (evaluation and start-up excluded), "
                     "measured on the machine that ran it, possibly while it was shared with other work; drawn "
                     "where >= 95 % of the orders have finished a trial.")
    return FigureOut(fig, notes)


def bench_budget(d: ItemData) -> FigureOut:
    """Best validation metric vs number of trials, per method."""
    return _curve_figure(d, "trials")


def bench_time(d: ItemData) -> FigureOut:
    """Best validation metric vs cumulative training time, per method."""
    return _curve_figure(d, "time")


# ---------------------------------------------------------------------------- the test table


def t_summary(x) -> tuple[float, float, int]:
    """(mean, half-width of the 95 % Student-t interval, n) of the finite values ``x``."""
    x = np.asarray([v for v in x if isinstance(v, (int, float)) and math.isfinite(v)], dtype=float)
    if len(x) == 0:
        return math.nan, math.nan, 0
    if len(x) == 1:
        return float(x[0]), math.nan, 1
    return float(x.mean()), float(scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x))), len(x)


def ci_text(mean: float, half: float, n: int) -> str:
    if n == 0:
        return "not run"
    return f"{mean:.4g}" + (f" ± {half:.2g}" if not math.isnan(half) else "") + f" (n={n})"


def stage_ids(record: dict, stage: str, method: str) -> list[str]:
    return [rid for rid, entries in record.get("runs", {}).items()
            if any(e.get("stage") == stage and e.get("method") == method for e in entries)]


def _values(runs: pd.DataFrame, ids: list[str], metric: str) -> list[float]:
    if metric not in runs.columns:
        return []
    rows = runs[runs["id"].isin(ids)]
    return [float(v) for v in rows[metric] if pd.notna(v)]


def verdict(tuned: dict[str, list[float]], metric: str, mode: str, a: str = "moca", b: str = "mmd") -> str:
    """One sentence comparing methods ``a`` and ``b`` at their tuned settings (Welch's t-test)."""
    if len(tuned.get(a, [])) < 2 or len(tuned.get(b, [])) < 2:
        return f"No verdict {method_label(a)} vs {method_label(b)}: fewer than 2 tuned test runs of one of them."
    xa, xb = np.array(tuned[a]), np.array(tuned[b])
    diff = xa.mean() - xb.mean()
    p = float(scipy.stats.ttest_ind(xa, xb, equal_var=False).pvalue)
    better = (diff < 0) if mode == "min" else (diff > 0)
    word = "better" if better else "worse"
    sig = "significant at the 5 % level" if p < 0.05 else "not significant at the 5 % level"
    return (f"Tuned {method_label(a)} vs tuned {method_label(b)} on the test split: mean {metric} "
            f"{xa.mean():.4g} vs {xb.mean():.4g} ({method_label(a)} {word}, difference {diff:+.3g}; "
            f"Welch's t-test over {len(xa)} and {len(xb)} seeds: p = {p:.2g}, {sig}).")


def bench_table(d: ItemData) -> TableOut:
    """Per method: selected settings, validation value, test metric tuned vs at the fixed setting."""
    frames, displays, notes = [], [], []
    for s in d.sweeps:
        data, display, more = _sweep_table(s)
        if len(d.sweeps) > 1:
            data.insert(0, "sweep", s.name)
            display.insert(0, "sweep", s.name)
        frames.append(data)
        displays.append(display)
        notes += [f"{s.name}: {n}" if len(d.sweeps) > 1 else n for n in more]
    return TableOut(pd.concat(frames, ignore_index=True), pd.concat(displays, ignore_index=True), notes)


def _sweep_table(s: SweepResults) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    record = read_search(s)
    metric, mode = record["metric"], record["mode"]
    runs = s.done_runs
    metrics = [metric] + [m for m in ("test_recon",) if m != metric and m in runs.columns]
    rows, tuned_values = [], {}
    for method in methods_of(record):
        chosen = record.get("chosen", {}).get(method)
        tuned, fixed = stage_ids(record, TUNED, method), stage_ids(record, FIXED, method)
        row = {"method": method_label(method), "method.name": method,
               "trials": len(record["trials"][method]),
               "selected": settings_text(chosen or {}) or ("base settings" if chosen else "none selected"),
               f"val {metric}": chosen["value"] if chosen else math.nan}
        for m in metrics:
            for label, ids in (("tuned", tuned), ("fixed", fixed)):
                mean, half, n = t_summary(_values(runs, ids, m))
                row.update({f"{label} {m} mean": mean, f"{label} {m} ci95": half, f"{label} {m} n": n})
        tuned_values[method] = _values(runs, tuned, metric)
        rows.append(row)
    data = pd.DataFrame(rows)
    display = pd.DataFrame({
        "method": data["method"], "trials": data["trials"], "selected (validation)": data["selected"],
        f"val {metric}": data[f"val {metric}"].map(lambda v: "–" if pd.isna(v) else f"{v:.4g}"),
        **{f"test {metric_label([s], m)}, {label}": [ci_text(r[f"{label} {m} mean"], r[f"{label} {m} ci95"], r[f"{label} {m} n"])
                                  for _, r in data.iterrows()] for m in metrics for label in ("tuned", "fixed")},
    })
    fixed = ", ".join(f"{k} = {value_text(v)}" for k, v in (record.get("fixed") or {}).items()) or "none"
    notes = [
        f"Tuned: the trial with the best final validation '{metric}' ({mode}) among the method's trials, re-run "
        f"with seeds {record.get('seeds')} and evaluated on the test split. Fixed: the base settings with {fixed} "
        "for every method (the paper's same-hyper-parameter comparison), same seeds, test split.",
        "Cells: mean ± half-width of the 95 % Student-t interval over the seeds (n = done runs)"
        + (f"; {spaces_sentence([s], metrics)}" if spaces_sentence([s], metrics) else "") + ".",
        verdict(tuned_values, metric, mode),
    ]
    if record.get("overrides"):
        notes.append(_overrides_note(record).strip())
    if not record.get("ready"):
        notes.append("The search is not finished: some trials are not done, so no tuned runs exist yet.")
    notes += [f"Search problem: {p}" for p in record.get("problems", [])]
    return data, display, notes
