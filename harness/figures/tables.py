"""The paper's tables (1-5) from sweep results, and their .md / .tex / .csv writers.

Every FID cell is the mean (± sample standard deviation over seeds, with the number of runs)
of the ``fid`` logged after the last epoch of each *done* run. Tables 1, 2, 3 and 5 also show
the values the paper reports (docs/paper.md "Experiments") in a separate column named ``paper``;
those numbers are constants of this module, never mixed into this harness's columns, and a
paper value the harness did not reproduce gets a row whose own cells say "not run".
Table 4 (best λ per input size, appendix D.2) has no ``paper`` column: only a row of
λ values survives in the paper's text, without the input sizes it belongs to (docs/paper.md).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.figures.base import (
    PAPER_SCALE, ItemData, TableOut, config_values, extra_keys, feature_note, label_of, metric_label, require_columns,
    value_text,
)

PAPER_COLUMN = "paper"

# (row label, method.name, model.arch or None = as cited by the paper, FID) - docs/paper.md
PAPER_TABLE1 = [("WAE-MMD", "mmd", None, 55.0), ("WAE-GAN", "wae_gan", None, 42.0),
                ("Sinkhorn AE", "sinkhorn", None, 56.0), ("SWAE", "swd", None, 79.0),
                ("CWAE", "cwae", None, 49.69), ("MoCA-A1", "moca", "a1", 48.43), ("MoCA-A2", "moca", "a2", 44.59)]
PAPER_TABLE2 = [("WAE-MMD", "mmd", None, 80.9), ("MoCA-A1", "moca", "a1", 61.49), ("MoCA-A2", "moca", "a2", 54.36)]
PAPER_TABLE3 = {0.0: 86.57, 0.9: 98.97, 0.99: 47.96, 0.999: 47.46}  # base momentum m -> FID
PAPER_TABLE5 = {100: 84.93, 5000: 48.45, 10000: 46.56, 30000: 47.31, 60000: 46.68, 120000: 49.94}  # K -> FID
METHOD_NAMES = {"moca": "MoCA", "mmd": "WAE-MMD", "wae_gan": "WAE-GAN", "sinkhorn": "Sinkhorn AE",
                "swd": "SWAE", "cwae": "CWAE", "svae": "S-VAE", "uniformity": "Uniformity", "none": "AE (no regularizer)"}
PAPER_NOTE = ("Column 'paper' holds the FID the paper reports (docs/paper.md), copied for comparison; "
              "it is not a result of this harness.")


def done_runs(d: ItemData) -> tuple[pd.DataFrame, list[str]]:
    """Done runs of all the item's sweeps (a ``sweep`` column when there are several)."""
    frames, varied = [], []
    for s in d.sweeps:
        frames.append(s.done_runs.assign(sweep=s.name))
        varied += [k for k in s.varied_keys if k not in varied]
    runs = pd.concat(frames, ignore_index=True)
    if len(d.sweeps) > 1:
        varied = ["sweep", *varied]
    return runs, varied


def with_sweep(d: ItemData, keys: list[str]) -> list[str]:
    """``keys`` plus ``sweep`` when the item has results from several sweeps (scales never mix)."""
    return keys + ["sweep"] if len(d.sweeps) > 1 and "sweep" not in keys else keys


def paper_scale_rows(d: ItemData, df: pd.DataFrame) -> pd.Series:
    """True for the rows of ``df`` that come from a sweep written for the paper's scale: only
    those get the paper's number beside them (a CPU-scale twin's row is not the paper's row)."""
    intended = {ref.name: ref.intended for ref in d.item.sweeps}
    if "sweep" in df.columns:
        return df["sweep"].map(lambda name: intended.get(name) == PAPER_SCALE).astype(bool)
    return pd.Series([intended.get(d.sweeps[0].name) == PAPER_SCALE] * len(df), index=df.index, dtype=bool)


def fid_summary(runs: pd.DataFrame, keys: list[str], value: str = "fid") -> pd.DataFrame:
    """Mean, sample sd, run count and FID sample size per group of ``keys``."""
    agg = {f"{value}_mean": (value, "mean"), f"{value}_sd": (value, "std"), "runs": ("id", "nunique")}
    if "fid_n" in runs.columns:
        agg["fid_n"] = ("fid_n", "max")
    out = runs.groupby(keys, dropna=False, sort=True).agg(**agg).reset_index()
    return out


def mean_sd_text(mean: float, sd: float, n: int) -> str:
    if mean is None or (isinstance(mean, float) and math.isnan(mean)):
        return "not run"
    text = f"{mean:.2f}"
    if n > 1 and not math.isnan(sd):
        text += f" ± {sd:.2f}"
    return text + f" (n={n})"


def _paper_text(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:g}"


def _fid_notes(d: ItemData) -> list[str]:
    return [f"FID: mean ± sample sd over the done runs (seeds) of each row, final epoch; "
            f"{config_values(d.sweeps, ['eval.fid.num_samples', 'eval.fid.split'])}{feature_note(d.sweeps, 'fid')}.",
            PAPER_NOTE]


def _ours(d: ItemData) -> str:
    """The column of this harness's FIDs, with their unit: ``FID [lenet-128] (this harness)``."""
    return f"{metric_label(d.sweeps, 'fid', 'FID')} (this harness)"


def method_table(paper_rows: list[tuple]) -> "callable":
    """Tables 1 and 2: FID per method and architecture, with the paper's column."""

    def draw(d: ItemData) -> TableOut:
        runs, varied = done_runs(d)
        require_columns(runs, ["fid"], f"{d.item.id}", "eval.metrics must include fid")
        keys = ["method.name", "model.arch"]
        require_columns(runs, keys, f"{d.item.id}", "run configs needed")
        keys += extra_keys(runs, varied, keys)
        keys = with_sweep(d, keys)
        ours = fid_summary(runs, keys)
        paper_scale = paper_scale_rows(d, ours)
        rows, used = [], set()
        for i, r in ours.iterrows():
            match = next((p for p in paper_rows if p[1] == r["method.name"] and p[2] in (None, r["model.arch"])), None)
            if not paper_scale[i]:
                match = None
            if match is not None:
                used.add(match[0])
            label = match[0] if match is not None else METHOD_NAMES.get(r["method.name"], r["method.name"])
            rows.append({"method": label, **{k: r[k] for k in keys}, "fid_mean": r["fid_mean"],
                         "fid_sd": r["fid_sd"], "runs": int(r["runs"]), "fid_n": r.get("fid_n", np.nan),
                         PAPER_COLUMN: match[3] if match is not None else np.nan})
        for label, method, arch, value in paper_rows:
            if label not in used:
                rows.append({"method": label, "method.name": method, "model.arch": arch, "fid_mean": np.nan,
                             "fid_sd": np.nan, "runs": 0, "fid_n": np.nan, PAPER_COLUMN: value})
        data = pd.DataFrame(rows)
        order = {p[0]: i for i, p in enumerate(paper_rows)}
        data = data.sort_values(by="method", key=lambda s: s.map(lambda x: order.get(x, len(order))),
                                kind="stable").reset_index(drop=True)
        display = pd.DataFrame({
            "method": data["method"],
            "arch": data["model.arch"].map(lambda a: "as cited" if not isinstance(a, str) else a),
            **{label_of(k): data[k].map(value_text) for k in keys[2:]},
            _ours(d): [mean_sd_text(m, s, n) for m, s, n in zip(data["fid_mean"], data["fid_sd"], data["runs"])],
            PAPER_COLUMN: data[PAPER_COLUMN].map(_paper_text),
        })
        notes = _fid_notes(d) + ["Baseline rows with arch 'as cited': the paper quotes them from the "
                                 "baselines' own papers; this harness's row shows its own architecture."]
        return TableOut(data, display, notes)

    return draw


def key_table(key: str, paper: dict) -> "callable":
    """Tables 3 and 5: FID per value of one MoCA hyper-parameter, with the paper's column."""

    def draw(d: ItemData) -> TableOut:
        runs, varied = done_runs(d)
        require_columns(runs, ["fid", key], f"{d.item.id}", f"eval.metrics must include fid; {key} must vary")
        keys = with_sweep(d, [key] + extra_keys(runs, varied, [key]))
        ours = fid_summary(runs, keys)

        def paper_value(v) -> float:
            return next((p for k, p in paper.items() if isinstance(v, (int, float)) and np.isclose(k, v)), np.nan)

        paper_scale = paper_scale_rows(d, ours)
        ours[PAPER_COLUMN] = ours[key].map(paper_value).where(paper_scale, np.nan)
        ran = [v for v, p in zip(ours[key], paper_scale) if p and isinstance(v, (int, float))]
        extra = [{key: k, "fid_mean": np.nan, "fid_sd": np.nan, "runs": 0, PAPER_COLUMN: v}
                 for k, v in paper.items() if not any(np.isclose(k, r) for r in ran)]
        data = pd.concat([ours, pd.DataFrame(extra)], ignore_index=True) if extra else ours
        data = data.sort_values(key, kind="stable").reset_index(drop=True)
        display = pd.DataFrame({
            **{label_of(k): data[k].map(value_text) for k in keys},
            _ours(d): [mean_sd_text(m, s, int(n)) for m, s, n in zip(data["fid_mean"], data["fid_sd"], data["runs"])],
            PAPER_COLUMN: data[PAPER_COLUMN].map(_paper_text),
        })
        return TableOut(data, display, _fid_notes(d))

    return draw


def best_lambda(runs: pd.DataFrame, size_key: str, extras: list[str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(FID summary per size × λ, the row of lowest mean FID per size): appendix D.2."""
    keys = [size_key, *extras, "method.weight"]
    summary = fid_summary(runs, keys)
    best = summary.loc[summary.groupby([size_key, *extras], dropna=False)["fid_mean"].idxmin()].reset_index(drop=True)
    grid = summary.groupby([size_key, *extras], dropna=False)["method.weight"].apply(
        lambda s: ", ".join(value_text(v) for v in sorted(s))).reset_index(name="lambda_grid")
    return summary, best.merge(grid, on=[size_key, *extras], how="left")


def table4(d: ItemData) -> TableOut:
    """Best λ per input size (lowest mean FID) and λ per pixel."""
    runs, varied = done_runs(d)
    size = "data.image_size"
    require_columns(runs, ["fid", size, "method.weight"], "table4", "eval.metrics must include fid; data.image_size and method.weight must be set")
    extras = extra_keys(runs, varied, [size, "method.weight"])
    _, best = best_lambda(runs, size, extras)
    best["pixels"] = best[size].map(lambda s: s * s if isinstance(s, (int, float)) and not math.isnan(s) else np.nan)
    best["lambda_per_pixel"] = best["method.weight"] / best["pixels"]
    data = best[[size, *extras, "pixels", "method.weight", "fid_mean", "fid_sd", "runs", "lambda_grid", "lambda_per_pixel"]]
    display = pd.DataFrame({
        "input size": data[size].map(lambda s: f"{value_text(s)}×{value_text(s)}"),
        **{label_of(k): data[k].map(value_text) for k in extras},
        "best λ": data["method.weight"].map(value_text),
        f"{metric_label(d.sweeps, 'fid', 'FID', per=size)} at best λ":
            [mean_sd_text(m, s, int(n)) for m, s, n in zip(data["fid_mean"], data["fid_sd"], data["runs"])],
        "λ tried": data["lambda_grid"],
        "best λ / pixels": data["lambda_per_pixel"].map(lambda v: f"{v:.3g}"),
    })
    notes = ["Best λ: the λ of lowest mean FID (over seeds) per input size; FID values are not comparable "
             "across sizes (appendix D.2).",
             f"{config_values(d.sweeps, ['eval.fid.num_samples', 'eval.fid.split'])}"
             f"{feature_note(d.sweeps, 'fid', per=size)}.",
             "The paper's Table 4 survives only as a row of λ values whose input sizes were lost "
             "(docs/paper.md), so this table has no 'paper' column."]
    return TableOut(data.reset_index(drop=True), display, notes)


# ------------------------------------------------------------------------------- writers


def _md_cell(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame) -> str:
    """A GitHub-flavoured Markdown table (pandas' to_markdown needs the optional tabulate)."""
    head = "| " + " | ".join(_md_cell(c) for c in df.columns) + " |"
    rule = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_md_cell(v) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, rule, *body]) + "\n"


LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                 "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


LATEX_UNICODE = {"±": r"$\pm$", "λ": r"$\lambda$", "τ": r"$\tau$", "×": r"$\times$", "—": "---", "–": "--",
                 "√": r"$\surd$"}


def latex_escape(text: str) -> str:
    return "".join(LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(df: pd.DataFrame, caption: str, label: str) -> str:
    """A LaTeX ``table`` (pandas' Styler, jinja2); cells, header and caption escaped."""
    styler = df.style.hide(axis="index").format(escape="latex").format_index(escape="latex", axis=1)
    tex = styler.to_latex(caption=latex_escape(caption), label=label, hrules=True, position_float="centering")
    for char, command in LATEX_UNICODE.items():  # so that pdflatex without extra packages compiles it
        tex = tex.replace(char, command)
    return tex
