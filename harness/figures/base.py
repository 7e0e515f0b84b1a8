"""The types of the figure registry: items, the sweeps that feed them, the paper's setting.

An :class:`Item` is one figure or table of the paper (ids as in docs/figures.md). It names
the sweeps that produce its data (:class:`SweepRef`: CPU-scale study ``sweeps/<name>.yaml``
or paper-scale ``sweeps/paper/<study>.yaml`` named ``paper_<study>``; results in
``results/<name>/``), the function that draws it, and the paper's setting for it
(:class:`Setting`, from docs/paper.md "Experiments" and appendix A-D of the
paper). The scale of a rendered item is *derived* from its runs' configs: "paper-scale" when
every run matches the paper's setting, else "CPU-scale" with the deviations listed, so a
caption can never claim more than the runs did.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import pandas as pd

from harness.figures.results import ItemDataError, SweepResults

if TYPE_CHECKING:
    from matplotlib.figure import Figure

PAPER_SCALE, CPU_SCALE, UNKNOWN_SCALE = "paper-scale", "CPU-scale", "scale unknown"
SWEEPS_DIR = "sweeps"


@dataclass(frozen=True)
class SweepRef:
    """A sweep feeding an item: sweep ``name`` writes ``results/<name>/``. Its file is
    ``sweeps/<name>.yaml`` (CPU-scale studies) or ``path`` (the paper-scale sweeps live in
    ``sweeps/paper/<study>.yaml`` and are named ``paper_<study>``)."""

    name: str
    intended: str  # the scale the sweep file is written for (PAPER_SCALE or CPU_SCALE)
    path: str | None = None  # the sweep file when it is not sweeps/<name>.yaml

    @property
    def file(self) -> str:
        return self.path or f"{SWEEPS_DIR}/{self.name}.yaml"

    @property
    def command(self) -> str:
        return f"python -m harness.sweep {self.file}"


@dataclass(frozen=True)
class Setting:
    """One key of the paper's setting: the values the paper used, or a lower bound."""

    key: str
    allowed: tuple = ()
    at_least: float | None = None

    def deviation(self, flat: dict[str, Any]) -> str | None:
        """``None`` when the run config ``flat`` matches, else ``"key = value (paper: ...)"``."""
        value = flat.get(self.key)
        if self.at_least is not None:
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value >= self.at_least
            want = f">= {self.at_least:g}"
        else:
            ok = value in self.allowed
            want = " or ".join(_text(v) for v in self.allowed)
        return None if ok else f"{self.key} = {_text(value)} (paper: {want})"


def _text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, float) and math.isfinite(value):
        return f"{value:g}"
    return str(value)


@dataclass
class FigureOut:
    """A drawn figure plus the item-specific caption lines (metric, N, mode)."""

    figure: "Figure"
    notes: list[str] = field(default_factory=list)


@dataclass
class TableOut:
    """A table: ``data`` (numbers, written to .csv), ``display`` (formatted, .md / .tex)."""

    data: pd.DataFrame
    display: pd.DataFrame
    notes: list[str] = field(default_factory=list)


@dataclass
class ItemData:
    """What a drawing function gets: its item and the sweeps that have done runs."""

    item: "Item"
    sweeps: list[SweepResults]
    scales: dict[str, str]  # sweep name -> derived scale label

    @property
    def title_scale(self) -> str:
        return " + ".join(dict.fromkeys(self.scales[s.name] for s in self.sweeps))


@dataclass(frozen=True)
class Item:
    """One figure or table of the paper."""

    id: str
    kind: str  # "figure" or "table"
    title: str
    measures: str  # what the paper shows (docs/paper.md "Experiments")
    sweeps: tuple[SweepRef, ...]
    draw: Callable[[ItemData], Any]  # -> FigureOut (figures) or TableOut (tables)
    paper_setting: tuple[Setting, ...]
    assumptions: tuple[str, ...] = ()  # what the paper leaves open and the sweep chooses


def derive_scale(item: Item, configs: list[dict[str, Any]], n_done: int) -> tuple[str, list[str]]:
    """(label, deviations) of the done runs of one sweep against the item's paper setting."""
    if not configs:
        return UNKNOWN_SCALE, ["no run config available"]
    deviations: list[str] = []
    for setting in item.paper_setting:
        for flat in configs:
            d = setting.deviation(flat)
            if d is not None and d not in deviations:
                deviations.append(d)
    if len(configs) < n_done:
        deviations.append(f"config unknown for {n_done - len(configs)} of {n_done} runs")
    return (PAPER_SCALE if not deviations else CPU_SCALE), deviations


# ------------------------------------------------------------------------- helpers for draw


LABELS = {"method.name": "method", "method.weight": "λ", "method.tau": "τ", "method.momentum": "m",
          "method.queue_size": "K", "model.latent_dim": "latent dim", "data.image_size": "image size",
          "model.arch": "arch", "seed": "seed"}


def label_of(key: str) -> str:
    return LABELS.get(key, key)


def value_text(value: Any) -> str:
    if isinstance(value, float) and math.isfinite(value) and value == int(value) and abs(value) < 1e15:
        return str(int(value))
    if isinstance(value, float) and math.isnan(value):
        return "–"
    return _text(value)


def extra_keys(df: pd.DataFrame, varied: list[str], used: list[str]) -> list[str]:
    """Varied keys other than ``used`` and ``seed`` that take several values within the
    groups of ``used``: they must label curves too, never be averaged over silently."""
    out = []
    groups = [k for k in used if k in df.columns]
    for key in varied:
        if key in used or key == "seed" or key not in df.columns:
            continue
        counts = df.groupby(groups, dropna=False)[key].nunique() if groups else pd.Series([df[key].nunique()])
        if (counts > 1).any():
            out.append(key)
    return out


def group_label(df: pd.DataFrame, keys: list[str], values_only: bool = False) -> pd.Series:
    """``"method=moca, λ=10"`` (or ``"moca, 10"``) per row, from ``keys`` (none: "all runs")."""
    if not keys:
        return pd.Series(["all runs"] * len(df), index=df.index, dtype=object)
    if values_only:
        return df.apply(lambda r: ", ".join(value_text(r[k]) for k in keys), axis=1)
    return df.apply(lambda r: ", ".join(f"{label_of(k)}={value_text(r[k])}" for k in keys), axis=1)


def group_title(keys: list[str]) -> str:
    """The legend title that goes with ``group_label(..., values_only=True)``."""
    return ", ".join(label_of(k) for k in keys) or "runs"


def require_columns(df: pd.DataFrame, columns: list[str], where: str, hint: str = "") -> None:
    missing = [c for c in columns if c not in df.columns or df[c].isna().all()]
    if missing:
        raise_data_error(f"{where}: no values for {', '.join(missing)}" + (f" ({hint})" if hint else ""))


def raise_data_error(message: str) -> None:
    raise ItemDataError(message)


def config_values(sweeps: list[SweepResults], keys: list[str]) -> str:
    """``"key = v1, v2; key2 = v"`` over the done runs' configs (what a caption states)."""
    parts = []
    for key in keys:
        values = []
        for s in sweeps:
            for flat in s.done_configs():
                v = value_text(flat.get(key)) if key in flat else "unknown"
                if v not in values:
                    values.append(v)
        parts.append(f"{key} = {', '.join(values) if values else 'unknown'}")
    return "; ".join(parts)


def feature_spaces(sweeps: list[SweepResults], metric: str, per: str | None = None) -> dict[Any, Any]:
    """The feature space (:class:`harness.run_folder.FeatureSpace`) ``metric`` was measured in,
    by value of the config key ``per`` (one entry, key None, without ``per``); empty when it is
    not a feature-space metric (or nothing records one). Values from two feature spaces are not
    comparable: a figure or table that would mix them (within one value of ``per``) is refused
    in one line (:class:`ItemDataError`)."""
    groups: dict[Any, set] = {}
    for s in sweeps:
        configs = s.configs
        for rid, space in s.feature_spaces(metric).items():
            value = configs.get(rid, {}).get(per) if per else None
            groups.setdefault(value, set()).add(space)
    for value, spaces in groups.items():
        if len(spaces) > 1:
            where = f" at {per} = {value_text(value)}" if per else ""
            labels = {x.label for x in spaces}
            raise_data_error(f"{metric}: the runs{where} were measured in {len(spaces)} feature spaces "
                             f"({'; '.join(sorted(x.caption() for x in spaces))}); "
                             + ("plot them separately" if len(labels) > 1 else "plot the runs of each network separately"))
    return {value: next(iter(spaces)) for value, spaces in groups.items()}


def metric_label(sweeps: list[SweepResults], metric: str, name: str | None = None, per: str | None = None) -> str:
    """An axis or column label that carries the metric's unit: ``fid [lenet-128]``."""
    labels = sorted({space.label for space in feature_spaces(sweeps, metric, per).values()})
    return f"{name or metric} [{', '.join(labels)}]" if labels else (name or metric)


def feature_note(sweeps: list[SweepResults], metric: str, per: str | None = None) -> str:
    """``"; feature network lenet-128 (sha256 …, test accuracy …)"`` for a caption (one per
    value of ``per`` when given), or ""."""
    spaces = feature_spaces(sweeps, metric, per)
    if not spaces:
        return ""
    if per is None:
        return f"; feature network {next(iter(spaces.values())).caption()}"
    return "; feature networks: " + ", ".join(f"{label_of(per)} = {value_text(v)}: {x.caption()}"
                                               for v, x in sorted(spaces.items(), key=lambda kv: _order_key(kv[0])))


def spaces_sentence(sweeps: list[SweepResults], metrics: list[str]) -> str:
    """``"fid, precision: feature network lenet-128 (sha256 …)"`` for the metrics measured in
    a feature space, grouped by space ("" when none is)."""
    groups: dict[str, list[str]] = {}
    for m in metrics:
        spaces = feature_spaces(sweeps, m)
        if spaces:
            groups.setdefault(next(iter(spaces.values())).caption(), []).append(m)
    return "; ".join(f"{', '.join(ms)} in feature network {caption}" for caption, ms in groups.items())


def _order_key(value: Any) -> tuple:
    """Numbers in numeric order, then anything else as text."""
    return (0, float(value), "") if isinstance(value, (int, float)) and not isinstance(value, bool) else (1, 0.0, str(value))


def seeds_text(df: pd.DataFrame, group_keys: list[str]) -> str:
    """How many runs (seeds) each plotted point averages: ``"2 seeds per point"`` or a range."""
    if df.empty:
        return "no runs"
    keys = [k for k in group_keys if k in df.columns]
    counts = df.groupby(keys, dropna=False)["id"].nunique() if keys else pd.Series([df["id"].nunique()])
    lo, hi = int(counts.min()), int(counts.max())
    return f"{lo} run{'s' if lo != 1 else ''} (seeds) per point" if lo == hi else f"{lo}-{hi} runs (seeds) per point"
