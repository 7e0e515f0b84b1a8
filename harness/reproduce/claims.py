"""The paper's claims, each turned into comparisons of CPU-scale runs (REPRODUCTION.md).

Every claim names the study sweeps it reads (``sweeps/<study>.yaml`` -> ``results/<study>/``),
the figure or table it belongs to, what the paper says, how the twin tests it, and how the
twin differs from the paper's setting. :meth:`Claim.evaluate` reads only done run folders
(through :func:`harness.figures.results.load_sweep_results`) and returns the comparisons
(:mod:`harness.reproduce.stats`), the numbers shown in the report and the run folders used,
so that every verdict can be traced to ``results/<study>/<run id>/``.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from harness.figures.base import value_text
from harness.figures.registry import FIG4
from harness.figures.results import ResultsUnreadable, SweepResults, load_sweep_results, read_at_threshold, with_per_run
from harness.reproduce.stats import (
    EQUAL, LESS, NOT_WORSE, Comparison, GridEdge, SeedValues, edge_of, summarize, trend,
)

FID = "fid"  # the domain FID (LeNet features) at CPU scale; the key the fid evaluator logs
# The collapse level of the test reconstruction error on MNIST: E‖x − mean image‖² over the test split
# (pixels in [0, 1], summed over 784 pixels), what a decoder that ignores its latent reaches
# (tests/test_reproduce.py recomputes it from the data). A model "has left collapse" when its test
# reconstruction error is at most LEFT_COLLAPSE of it.
MNIST_MEAN_IMAGE_RECON = 52.85
LEFT_COLLAPSE = 0.75


class Data:
    """Lazy access to the done runs of the study sweeps under one results root."""

    def __init__(self, results: str | Path):
        self.results = Path(results)
        self._cache: dict[str, SweepResults | None] = {}
        self.problems: list[str] = []

    def sweep(self, name: str) -> SweepResults | None:
        if name not in self._cache:
            try:
                self._cache[name] = load_sweep_results(self.results, name)
            except ResultsUnreadable as e:
                self.problems.append(str(e))
                self._cache[name] = None
        return self._cache[name]

    def runs(self, name: str) -> pd.DataFrame:
        s = self.sweep(name)
        return pd.DataFrame() if s is None else s.done_runs

    def curves(self, name: str) -> pd.DataFrame:
        s = self.sweep(name)
        return pd.DataFrame() if s is None else s.done_curves


def _match(df: pd.DataFrame, filters: dict) -> pd.DataFrame:
    for key, want in filters.items():
        if key not in df.columns:
            return df.iloc[0:0]
        col = df[key]
        if isinstance(want, (int, float)) and not isinstance(want, bool):
            num = pd.to_numeric(col, errors="coerce")
            df = df[np.isclose(num.astype(float), float(want), rtol=1e-9, atol=0.0)]
        else:
            df = df[col == want]
    return df


@dataclass
class Outcome:
    comparisons: list[Comparison] = field(default_factory=list)
    numbers: list[str] = field(default_factory=list)
    runs: dict[str, list[str]] = field(default_factory=dict)  # setting label -> run folders
    notes: list[str] = field(default_factory=list)


class Ctx:
    """What an evaluation function gets: the data and the outcome it fills."""

    def __init__(self, data: Data):
        self.data = data
        self.out = Outcome()

    def values(self, study: str, metric: str, label: str, epoch: int | None = None, frame: pd.DataFrame | None = None,
               **filters) -> SeedValues:
        """The seed values of ``metric`` for the runs of ``study`` matching ``filters``
        (dotted keys passed with ``__`` for ``.``), final epoch or ``epoch``, with their seeds
        (so that comparisons between settings that share seeds are paired); records the folders.
        ``frame``: one row per run to read instead of the final values (e.g. :func:`at_threshold`)."""
        filters = {k.replace("__", "."): v for k, v in filters.items()}
        df = frame if frame is not None else self.data.runs(study) if epoch is None else self.data.curves(study)
        if df.empty:
            return SeedValues()
        if epoch is not None:
            df = df[df["epoch"] == epoch]
        df = _match(df, filters)
        if metric not in df.columns:
            return SeedValues()
        df = df[df[metric].notna()]
        folders = [str(self.data.results / study / rid) for rid in df["id"]]
        self.out.runs.setdefault(f"{study}: {label}", [])
        self.out.runs[f"{study}: {label}"] += [f for f in folders if f not in self.out.runs[f"{study}: {label}"]]
        seeds = [int(v) for v in df["seed"]] if "seed" in df.columns else []  # no seeds: compared unpaired
        return SeedValues([float(v) for v in df[metric]], seeds, list(df["id"]), study)

    def grid(self, study: str, key: str, **filters) -> list:
        df = _match(self.data.runs(study), {k.replace("__", "."): v for k, v in filters.items()})
        if key not in df.columns:
            return []
        return sorted(v for v in df[key].dropna().unique())

    def number(self, label: str, values: list[float]) -> str:
        return f"{label}: {summarize(values).text()}"

    def note(self, text: str) -> None:
        self.out.notes.append(text)


@dataclass(frozen=True)
class Claim:
    id: str
    item: str  # figure / table id of harness.figures (the figure linked in the report)
    title: str
    paper: str  # what the paper claims
    test: str  # how the twin tests it
    studies: tuple[str, ...]
    differs: str  # how the twin differs from the paper's setting
    run: Callable[[Ctx], None]
    measurement: bool = False  # a diagnosis row that reports numbers, with no verdict
    quote: str = ""  # the paper's sentence, verbatim from docs/paper.md "The claims, quoted" (QUOTES)
    section: str = ""  # where the paper says it

    def quoted(self) -> str:
        """The quote with its section, or "" for rows that quote nothing (diagnosis, beyond the paper)."""
        return f"\"{self.quote}\" ({self.section})" if self.quote else ""

    def evaluate(self, data: Data) -> Outcome:
        ctx = Ctx(data)
        self.run(ctx)
        return ctx.out


# ------------------------------------------------------------------------------ building blocks


def first_epoch_at(data: Data, study: str, fraction: float) -> int | None:
    """The first evaluated epoch at or after ``fraction`` of training (None without curves)."""
    curves, runs = data.curves(study), data.runs(study)
    if curves.empty or "train.epochs" not in runs.columns:
        return None
    epochs = int(runs["train.epochs"].max())
    logged = sorted(e for e in curves["epoch"].unique() if e >= fraction * epochs and e > 0)
    return int(logged[0]) if logged else None


def at_threshold(data: Data, study: str, metric: str, on: str, threshold: float) -> pd.DataFrame:
    """The study's done runs with ``metric`` read at the first evaluation at which ``on`` is at
    or below ``threshold`` (:func:`harness.figures.results.read_at_threshold`, as Fig. 4 draws it)."""
    runs, curves = data.runs(study), data.curves(study)
    if runs.empty or curves.empty or on not in curves.columns or metric not in curves.columns:
        return runs.iloc[0:0]
    return read_at_threshold(runs, curves, metric, on, threshold)


def curve_mean(data: Data, study: str, metric: str) -> pd.DataFrame:
    """The study's done runs with ``metric`` replaced by its mean over every evaluation after the
    start (epochs ≥ 1): the curve as a whole, a discrete area under it per epoch."""
    runs, curves = data.runs(study), data.curves(study)
    if runs.empty or curves.empty or metric not in curves.columns:
        return runs.iloc[0:0]
    return with_per_run(runs, metric, curves[(curves["epoch"] > 0) & curves[metric].notna()].groupby("id")[metric].mean())


def best_of(ctx: Ctx, study: str, metric: str, key: str = "method.weight", frame: pd.DataFrame | None = None,
            **filters) -> float | None:
    """The value of ``key`` with the lowest mean ``metric`` among the runs matching ``filters``."""
    df = _match(ctx.data.runs(study) if frame is None else frame, {k.replace("__", "."): v for k, v in filters.items()})
    if metric not in df.columns or key not in df.columns or not df[metric].notna().any():
        return None
    return float(df.groupby(key)[metric].mean().idxmin())


def lambda_trend(ctx: Ctx, study: str, metric: str, decreasing: bool, what: str, up_to: float | None = None,
                 **filters) -> None:
    """The trend of ``metric`` over the study's λ grid (``up_to``: only λ ≤ it)."""
    lams = [lam for lam in ctx.grid(study, "method.weight", **filters) if up_to is None or lam <= up_to]
    points = [(f"λ={value_text(lam)}", ctx.values(study, metric, f"λ={value_text(lam)}", **filters,
                                                  method__weight=lam)) for lam in lams]
    ctx.out.numbers += [ctx.number(f"{what} {label}", vals) for label, vals in points if vals]
    ctx.out.comparisons += trend(points, metric, decreasing)


def method_pairs(ctx: Ctx, study: str, metric: str, ours: str, others: list[str], epoch: int | None = None,
                 **filters) -> None:
    """``ours`` lower than each of ``others`` (per value of any other filter)."""
    a = ctx.values(study, metric, ours, epoch, method__name=ours, **filters)
    ctx.out.numbers.append(ctx.number(f"{metric} {ours}", a))
    for other in others:
        b = ctx.values(study, metric, other, epoch, method__name=other, **filters)
        if b:
            ctx.out.numbers.append(ctx.number(f"{metric} {other}", b))
        ctx.out.comparisons.append(Comparison(LESS, ours, other, a, b, metric))


def best_lambda_shift(ctx: Ctx, study: str, key: str, what: str, metric: str = FID,
                      frame: pd.DataFrame | None = None) -> None:
    """"The λ of lowest mean ``metric`` grows with ``key``" (Figs. 4, 9, 10; Table 4).

    λ*(x): the grid λ of lowest mean ``metric`` at x. Edge rule (:class:`GridEdge`): when any
    λ*(x) is the smallest or the largest λ of the grid, the grid cannot locate that optimum and
    the claim is *untestable on this grid*. Otherwise the comparison is made at the largest
    x: a λ above λ*(x_min) (λ*(x_max) when it is above, else the next grid value) against
    λ*(x_min): "a larger λ than the smallest x prefers gives a lower value at the largest x".
    ``frame``: the runs to read (default: final values); a setting with a seed whose value is
    missing in it (e.g. never reached the threshold of :func:`at_threshold`) is left out of
    the search and said so.
    """
    runs = ctx.data.runs(study) if frame is None else frame
    xs = ctx.grid(study, key)
    lams = ctx.grid(study, "method.weight")
    best = {}
    for x in xs:
        means, missing = {}, []
        for lam in lams:
            df = _match(runs, {key: x, "method.weight": lam})
            if metric in df.columns and len(df) and df[metric].notna().all():
                means[lam] = float(df[metric].mean())
            elif len(df):
                missing.append(value_text(lam))
        if missing:
            ctx.note(f"{what}={value_text(x)}: λ = {', '.join(missing)} left out of the best-λ search (a seed "
                     f"has no {metric} value: it did not reach the protocol's point by the end of training)")
        if means:
            best[x] = min(means, key=means.get)
            ctx.out.numbers.append(f"{what}={value_text(x)}: best λ = {value_text(best[x])} ("
                                   + ", ".join(f"λ={value_text(k)}: {v:.3g}" for k, v in means.items()) + ")")
    if len(best) < 2:
        return
    edges = [x for x in best if edge_of(best[x], lams)]
    for x in edges:
        label = f"{what}={value_text(x)}: best λ = {value_text(best[x])}"
        vals = ctx.values(study, metric, f"{what}={value_text(x)}, λ={value_text(best[x])}", frame=frame,
                          **{key.replace('.', '__'): x}, method__weight=best[x])
        ctx.out.comparisons.append(GridEdge(label, list(lams), vals))
    if edges:
        return
    lo_x, hi_x = min(best), max(best)
    above = [lam for lam in lams if lam > best[lo_x]]
    cand = best[hi_x] if best[hi_x] > best[lo_x] else above[0]
    a = ctx.values(study, metric, f"{what}={value_text(hi_x)}, λ={value_text(cand)}", frame=frame,
                   **{key.replace('.', '__'): hi_x}, method__weight=cand)
    b = ctx.values(study, metric, f"{what}={value_text(hi_x)}, λ={value_text(best[lo_x])}", frame=frame,
                   **{key.replace('.', '__'): hi_x}, method__weight=best[lo_x])
    ctx.out.comparisons.append(Comparison(LESS, f"{what}={value_text(hi_x)} at λ={value_text(cand)}",
                                          f"at λ={value_text(best[lo_x])} (best for {what}={value_text(lo_x)})",
                                          a, b, metric))


# ------------------------------------------------------------------------------ the claims


def _fig2_left(ctx: Ctx) -> None:
    epoch = 8  # 10 % of the paper's 80 epochs
    method_pairs(ctx, "synthetic_latent", "latent_swd", "moca", ["mmd", "swd", "sinkhorn"], epoch=epoch)
    ctx.out.numbers = [f"epoch {epoch}: {n}" for n in ctx.out.numbers]


EARLY = (0.05, 0.10)  # Fig. 2 (right): "early" is 5 % of the run (the paper's epoch 5 of 100) and 10 %


def _early_note(ctx: Ctx, epoch: int, fraction: float) -> None:
    """Say when the evaluation read as ``fraction`` of the run lies later than it (coarse curves)."""
    runs = ctx.data.runs("convergence")
    epochs = int(runs["train.epochs"].max()) if "train.epochs" in runs.columns and not runs.empty else 0
    if epochs and epoch / epochs > fraction + 0.5 / epochs:
        ctx.note(f"the first evaluation at or after {100 * fraction:g} % of the run is epoch {epoch} of {epochs} "
                 f"({100 * epoch / epochs:.0f} %): the curves have no point at {100 * fraction:g} %")


def _fig2_right_early(metric: str):
    def run(ctx: Ctx) -> None:
        for fraction in EARLY:
            epoch = first_epoch_at(ctx.data, "convergence", fraction)
            if epoch is None:
                continue
            _early_note(ctx, epoch, fraction)
            _moca_vs_mmd(ctx, metric, f"{metric} at epoch {epoch}", f"epoch {epoch}", f" epoch {epoch}", epoch)
    return run


def _fig2_right_curve(ctx: Ctx) -> None:
    """The curves as a whole: each run's mean image SWD over its evaluations after the start."""
    _moca_vs_mmd(ctx, "image_swd", "mean image SWD over epochs ≥ 1", "mean over the curve", " curve",
                 frame=curve_mean(ctx.data, "convergence", "image_swd"))


def _moca_vs_mmd(ctx: Ctx, metric: str, what: str, lead: str, tag: str = "", epoch: int | None = None,
                frame: pd.DataFrame | None = None) -> None:
    """MoCA lower than WAE-MMD at each λ of the convergence study: final values, at ``epoch``, or read
    from ``frame`` (one row per run); ``what`` names the comparison, ``lead`` the numbers, ``tag`` the runs."""
    for lam in ctx.grid("convergence", "method.weight"):
        a, b = (ctx.values("convergence", metric, f"{m} λ={value_text(lam)}{tag}", epoch, frame=frame,
                           method__name=m, method__weight=lam) for m in ("moca", "mmd"))
        ctx.out.comparisons.append(Comparison(LESS, f"MoCA λ={value_text(lam)}", f"WAE-MMD λ={value_text(lam)}",
                                              a, b, what))
        ctx.out.numbers.append(f"{lead}, λ={value_text(lam)}: MoCA {summarize(a).text()}, "
                               f"WAE-MMD {summarize(b).text()}")


def _fig2_right_final(metric: str):
    def run(ctx: Ctx) -> None:
        _moca_vs_mmd(ctx, metric, f"final {metric}", "final")
    return run


def _fig2_right_lambda(ctx: Ctx) -> None:
    lambda_trend(ctx, "convergence", "image_swd", True, "MoCA final image SWD", method__name="moca")


def _fig3(ctx: Ctx) -> None:
    lambda_trend(ctx, "lambda", "latent_sv_entropy", False, "spectral entropy")


def _fig3_fid(ctx: Ctx) -> None:
    lambda_trend(ctx, "lambda", FID, True, "FID")


def _fig8(ctx: Ctx) -> None:
    lambda_trend(ctx, "lambda", "test_recon", True, "test reconstruction error")


def _below_best(study: str, metric: str, decreasing: bool, what: str, **filters):
    """A trend claim over λ ≤ the study's best λ by FID (sweeps/fair/DESIGN.md): above the optimum a
    regularizer too strong for the budget can reverse any trend, below it the trend is the paper's."""
    def run(ctx: Ctx) -> None:
        best = best_of(ctx, study, FID, **filters)
        if best is None:
            return
        grid = ctx.grid(study, "method.weight", **filters)
        lams = [lam for lam in grid if lam <= best]
        ctx.note(f"best λ by mean final FID: {value_text(best)}; the trend is read over λ ∈ "
                 f"{{{', '.join(value_text(x) for x in lams)}}}")
        if len(lams) < 2:  # the best λ is the smallest of the grid: nothing below it to read (edge rule)
            vals = ctx.values(study, FID, f"λ={value_text(best)}", **filters, method__weight=best)
            ctx.out.comparisons.append(GridEdge(f"best λ = {value_text(best)}", list(grid), vals))
            return
        lambda_trend(ctx, study, metric, decreasing, what, up_to=best, **filters)
    return run


# Fig. 4's protocol (§4.2: "trained until the reconstruction error reaches 50", twice its fully trained
# 25), scaled to the twin in sweeps/latent_dim.yaml and its pilot: test reconstruction error 35; the
# figure reads the same threshold (harness/figures/registry.py, FIG4).
LATENT_RECON_THRESHOLD = FIG4.read_at.threshold_of("latent_dim")


def _fig4(ctx: Ctx) -> None:
    frame = at_threshold(ctx.data, "latent_dim", FID, "test_recon", LATENT_RECON_THRESHOLD)
    if not frame.empty:
        reached = frame.dropna(subset=["threshold_epoch"])
        ctx.note(f"FID read at the first evaluation (every 2 epochs) with test reconstruction ≤ "
                 f"{LATENT_RECON_THRESHOLD:g}: {len(reached)} of {len(frame)} runs reached it, at epochs "
                 f"{', '.join(str(int(e)) for e in sorted(reached['threshold_epoch'].unique()))}")
    best_lambda_shift(ctx, "latent_dim", "model.latent_dim", "latent", frame=frame)


def _fig9(ctx: Ctx) -> None:
    best_lambda_shift(ctx, "input_size", "data.image_size", "size")


def _fig10_tau(ctx: Ctx) -> None:
    """Best τ<1 cell against the best τ=1 cell; each best is over λ, so a best λ on an edge of
    the λ grid makes the claim untestable on this grid (edge rule)."""
    runs = ctx.data.runs("temperature")
    if runs.empty or FID not in runs.columns:
        return
    cells = runs.groupby(["method.tau", "method.weight"])[FID].mean().dropna()
    below, at_one = cells[cells.index.get_level_values(0) < 1], cells[cells.index.get_level_values(0) >= 1]
    if below.empty or at_one.empty:
        return
    (tb, lb), (t1, l1) = below.idxmin(), at_one.idxmin()
    a = ctx.values("temperature", FID, f"τ={value_text(tb)}, λ={value_text(lb)}", method__tau=tb, method__weight=lb)
    b = ctx.values("temperature", FID, f"τ={value_text(t1)}, λ={value_text(l1)}", method__tau=t1, method__weight=l1)
    ctx.out.numbers += [f"best cell with τ<1: τ={value_text(tb)}, λ={value_text(lb)}: {summarize(a).text()}",
                        f"best cell with τ=1: λ={value_text(l1)}: {summarize(b).text()}"]
    lams = sorted(cells.index.get_level_values(1).unique())
    for tau, lam, vals in ((tb, lb, a), (t1, l1, b)):
        if edge_of(lam, lams):
            ctx.out.comparisons.append(GridEdge(f"τ={value_text(tau)}: best λ = {value_text(lam)}", lams, vals))
    ctx.out.comparisons.append(Comparison(LESS, "best τ<1 cell", "best τ=1 cell", a, b, FID))


def _fig10_lambda(ctx: Ctx) -> None:
    best_lambda_shift(ctx, "temperature", "method.tau", "τ")


def _fig7(ctx: Ctx) -> None:
    ref = ctx.values("mnist_tsne", "knn_acc", "svae", method__name="svae")
    ctx.out.numbers.append(ctx.number("kNN accuracy, S-VAE", ref))
    recon = {m: ctx.values("mnist_tsne", "test_recon", f"{m} test reconstruction", method__name=m)
             for m in ("svae", "moca", "none")}
    if recon["svae"]:
        level = float(np.mean(recon["svae"])) / MNIST_MEAN_IMAGE_RECON
        left = level <= LEFT_COLLAPSE
        others = "; ".join(f"{name} {np.mean(recon[m]):.1f}" for m, name in (("moca", "MoCA"), ("none", "plain AE"))
                           if recon[m])
        verdict_text = (f"it has left collapse (at most {100 * LEFT_COLLAPSE:.0f} % of the level)" if left else
                        f"it has NOT left collapse (more than {100 * LEFT_COLLAPSE:.0f} % of the level), so 'not worse "
                        "than the S-VAE' compares MoCA with a nearly collapsed model and is a weak test of 'similar "
                        "to'; the fair re-run trains the S-VAE longer (sweeps/fair/DESIGN.md)")
        ctx.note(f"the comparator: the S-VAE's test reconstruction error is {np.mean(recon['svae']):.1f}, "
                 f"{100 * level:.0f} % of the mean-image level {MNIST_MEAN_IMAGE_RECON} ({others}): {verdict_text}")
    ctx.out.numbers.append(ctx.number("plain AE", ctx.values("mnist_tsne", "knn_acc", "none", method__name="none")))
    for method in ("moca", "mmd"):
        for lam in ctx.grid("mnist_tsne", "method.weight", method__name=method):
            vals = ctx.values("mnist_tsne", "knn_acc", f"{method} λ={value_text(lam)}", method__name=method,
                              method__weight=lam)
            ctx.out.numbers.append(ctx.number(f"{method} λ={value_text(lam)}", vals))
            if method == "moca":
                ctx.out.comparisons.append(Comparison(NOT_WORSE, f"MoCA λ={value_text(lam)}", "S-VAE", vals, ref,
                                                      "knn_acc", margin=0.02, higher_is_better=True))


def _table1(ctx: Ctx) -> None:
    """MoCA against the baselines the paper says it beats: all but WAE-GAN (section 4.4). WAE-GAN and
    the plain autoencoder are reference rows (numbers only, no comparison)."""
    method_pairs(ctx, "methods", FID, "moca", ["mmd", "sinkhorn", "swd", "cwae"])
    for ref, label in (("none", "plain autoencoder (reference)"), ("wae_gan", "WAE-GAN (reference, not claimed)")):
        vals = ctx.values("methods", FID, ref, method__name=ref)
        if vals:
            ctx.out.numbers.append(ctx.number(f"fid {label}", vals))
    ctx.note("diversity is compared by coverage (prdc), not recall: recall stays high under mode collapse "
             "(docs/evaluation.md); recall is listed for completeness")
    for metric in ("kid", "precision", "recall", "density", "coverage", "image_swd", "test_recon"):
        for method in ("moca", "mmd", "wae_gan", "sinkhorn", "swd", "cwae", "none"):
            vals = ctx.values("methods", metric, method, method__name=method)
            if vals:
                ctx.out.numbers.append(ctx.number(f"{metric} {method}", vals))


def _table2(ctx: Ctx) -> None:
    method_pairs(ctx, "methods", FID, "moca", ["mmd"])


def _table3_low(ctx: Ctx) -> None:
    hi = ctx.values("momentum", FID, "m=0.99", method__momentum=0.99)
    ctx.out.numbers.append(ctx.number("FID m=0.99", hi))
    for m in (0.0, 0.9):
        lo = ctx.values("momentum", FID, f"m={value_text(m)}", method__momentum=m)
        ctx.out.numbers.append(ctx.number(f"FID m={value_text(m)}", lo))
        ctx.out.comparisons.append(Comparison(LESS, "m=0.99", f"m={value_text(m)}", hi, lo, FID))


def _table3_high(ctx: Ctx) -> None:
    a = ctx.values("momentum", FID, "m=0.999", method__momentum=0.999)
    b = ctx.values("momentum", FID, "m=0.99", method__momentum=0.99)
    ctx.out.numbers += [ctx.number("FID m=0.999", a), ctx.number("FID m=0.99", b)]
    ctx.out.comparisons.append(Comparison(EQUAL, "m=0.999", "m=0.99", a, b, FID))


def _table5_small(ctx: Ctx) -> None:
    small = ctx.values("queue", FID, "K=100", method__queue_size=100)
    ctx.out.numbers.append(ctx.number("FID K=100", small))
    for k in (600, 3700):
        v = ctx.values("queue", FID, f"K={k}", method__queue_size=k)
        ctx.out.numbers.append(ctx.number(f"FID K={k}", v))
        ctx.out.comparisons.append(Comparison(LESS, f"K={k}", "K=100", v, small, FID))


def _table5_stable(ctx: Ctx) -> None:
    mid = ctx.values("queue", FID, "K=3700", method__queue_size=3700)
    for k in (600, 7400):
        v = ctx.values("queue", FID, f"K={k}", method__queue_size=k)
        ctx.out.numbers.append(ctx.number(f"FID K={k}", v))
        ctx.out.comparisons.append(Comparison(EQUAL, f"K={k}", "K=3700", v, mid, FID))
    ctx.out.numbers.append(ctx.number("FID K=3700", mid))


SHORT = ("12 epochs (1,872 steps) on 10,000 MNIST images with a 16-channel convnet, centre λ = 10 (paper: 50k-500k "
         "steps, CIFAR-10/CelebA, A1/A2)")

CLAIMS: list[Claim] = [
    Claim("fig2_left", "fig2_left", "Fig. 2 (left): latent matching alone",
          "MoCA matches the latent distribution to the uniform sphere faster than Sinkhorn, SWD and MMD",
          "latent SWD to sphere samples at epoch 8 (10 % of training): MoCA lower than each baseline",
          ("synthetic_latent",),
          "the paper's own setting (1,000 points in R^100, MLP, 80 epochs); the MLP width, lr and λ are lost in "
          "the paper and chosen here", _fig2_left),
    Claim("fig2_right_early", "fig2_right", "Fig. 2 (right): faster convergence (image SWD)",
          "at epoch 5 (5 % of training) MoCA's image SWD is below WAE-MMD's for every λ",
          "image SWD at 5 % and at 10 % of training (epochs 1 and 2 of 20): MoCA lower than WAE-MMD at each λ",
          ("convergence",), "MNIST, small convnet, 20 epochs (3,120 steps), SWD on 500 images at one pyramid level "
          "(paper: CIFAR-10, A2, 100 epochs, 10,000 images)", _fig2_right_early("image_swd")),
    Claim("fig2_right_early_fid", "fig2_right", "Fig. 2 (right): faster convergence (domain FID)",
          "(the same claim measured with the domain FID instead of image SWD)",
          "domain FID at 5 % and at 10 % of training: MoCA lower than WAE-MMD at each λ",
          ("convergence",), "as above; FID in LeNet features (not in the paper's figure)", _fig2_right_early(FID)),
    Claim("fig2_right_curve", "fig2_right", "Fig. 2 (right): faster convergence (the whole curve)",
          "(the same claim read from the whole curve) MoCA's image SWD is below WAE-MMD's over training",
          "mean image SWD over the evaluations after the start (epochs 1-20): MoCA lower than WAE-MMD at each λ",
          ("convergence",), "as above", _fig2_right_curve),
    Claim("fig2_right_final", "fig2_right", "Fig. 2 (right): better final SWD",
          "the final SWD of MoCA is lower than WAE-MMD's for every λ",
          "final image SWD: MoCA lower than WAE-MMD at each λ", ("convergence",),
          "as above", _fig2_right_final("image_swd")),
    Claim("fig2_right_lambda", "fig2_right", "Fig. 2 (right): larger λ, smaller SWD for MoCA",
          "for MoCA, larger λ gives smaller SWD", "final image SWD of MoCA falls as λ grows (trend rule)",
          ("convergence",), "as above", _fig2_right_lambda),
    Claim("fig3", "fig3", "Fig. 3: larger λ, more isotropic latents",
          "with larger λ the singular values of the latents become more uniform",
          "normalised entropy of the singular-value spectrum of 2,000 training latents rises with λ (trend rule)",
          ("lambda",), f"{SHORT}; 2,000 latents (paper 10,000)", _fig3),
    Claim("fig3_fid", "fig3", "Section 4.2: larger λ, lower FID",
          "models trained with larger λ have lower FID", "final domain FID falls as λ grows (trend rule)",
          ("lambda",), f"{SHORT}; FID in LeNet features on 2,000 samples (paper: Inception, 10,000)", _fig3_fid),
    Claim("fig4", "fig4", "Fig. 4: larger latent dimension needs larger λ",
          "the larger the latent dimension, the larger the λ needed for a similar FID",
          "FID at the reconstruction threshold: at the largest latent dimension, a λ above the best λ of the "
          "smallest dimension gives a lower FID (best-λ shift rule)", ("latent_dim",),
          f"{SHORT}; FID read where the test reconstruction error first reaches 35 (evaluated every 2 epochs, cap "
          "12 epochs; the paper trains to 50, twice its fully trained error); latent 4/16/64 (paper: 64/128/256 "
          "assumed)", _fig4),
    Claim("fig7", "fig7", "Fig. 7: class structure of the latents",
          "MoCA learns class clusters similar to the hyperspherical VAE",
          "kNN accuracy of test latents (k-NN against training latents): MoCA not worse than the S-VAE by more "
          "than 2 points, at each λ", ("mnist_tsne",),
          "10,000 images, the paper's 25 epochs (paper: 60,000 images); the class structure as a kNN accuracy, where the "
          "paper shows t-SNE maps only", _fig7),
    Claim("fig8", "fig8", "Fig. 8: larger λ, lower reconstruction error",
          "larger λ reduces the final reconstruction loss", "final test reconstruction error falls as λ grows "
          "(trend rule)", ("lambda",), SHORT, _fig8),
    Claim("fig9", "fig9", "Fig. 9 / Table 4: best λ grows with the input size",
          "the λ of best FID grows roughly in proportion to the pixel count",
          "at 28x28, a λ above the best λ at 8x8 gives a lower FID (best-λ shift rule)", ("input_size",),
          f"{SHORT}; MNIST at 8/14/28 pixels (paper: CelebA-HQ at 64/128/256, 400 epochs)", _fig9),
    Claim("fig10_tau", "fig10", "Fig. 10: τ must be below 1",
          "the temperature must be smaller than 1 for good FID",
          "best τ<1 cell of the τ × λ grid has a lower FID than the best τ=1 cell", ("temperature",),
          f"{SHORT} (paper: 50 epochs)", _fig10_tau),
    Claim("fig10_lambda", "fig10", "Fig. 10: larger τ needs larger λ",
          "for larger τ a larger λ is needed", "at τ=1, a λ above the best λ at τ=0.1 gives a lower FID "
          "(best-λ shift rule)", ("temperature",), f"{SHORT} (paper: 50 epochs)", _fig10_lambda),
    Claim("table1", "table1", "Table 1: MoCA against the baselines except WAE-GAN",
          "MoCA's FID is lower than WAE-MMD's, the Sinkhorn AE's, SWAE's and CWAE's (not WAE-GAN's)",
          "final domain FID: MoCA lower than each of these baselines trained on the same model; WAE-GAN and the "
          "plain autoencoder as reference rows", ("methods",),
          f"{SHORT}; every method at the settings the equal-budget benchmark tuned for it (sweeps/methods.yaml), "
          "as the paper cites each baseline's own tuned result; CWAE with the Gaussian prior", _table1),
    Claim("table2", "table2", "Table 2: MoCA against WAE-MMD",
          "MoCA's FID is lower than WAE-MMD's", "final domain FID: MoCA lower than WAE-MMD", ("methods",),
          f"{SHORT}; each at its benchmark-tuned settings", _table2),
    Claim("table3_low", "table3", "Table 3: m must be close to 1",
          "FID is much worse for m = 0 and 0.9 than for 0.99", "final FID: m=0.99 lower than m=0 and m=0.9",
          ("momentum",), f"{SHORT}; the paper's m values as is (see sweeps/momentum.yaml)", _table3_low),
    Claim("table3_high", "table3", "Table 3: m = 0.999 as good as 0.99",
          "m = 0.999 and 0.99 give the same FID (47.46 vs 47.96)", "final FID: m=0.999 ≈ m=0.99 (10 % margin)",
          ("momentum",), "as above but 33 epochs (5,148 steps), so that 0.999's 1,000-step horizon is 19 % of the run",
          _table3_high),
    Claim("table5_small", "table5", "Table 5: a tiny queue is worse",
          "FID is much worse with K = 100", "final FID: K=600 and K=3700 lower than K=100", ("queue",),
          f"{SHORT}; K scaled as a fraction of the training set, K=100 kept", _table5_small),
    Claim("table5_stable", "table5", "Table 5: stable over a wide range of K",
          "FID is stable for K from 5,000 to 120,000", "final FID: K=600 ≈ K=3700 ≈ K=7400 (10 % margin)",
          ("queue",), f"{SHORT}; K scaled as a fraction of the training set", _table5_stable),
]


# The paper's sentence behind each claim: (section, quote), verbatim lines of
# docs/paper.md "The claims, quoted" (tests/test_reproduce.py checks it).
_FAST = ("§4.1", "Faster convergence: at epoch 5, the SWD for MoCA is already below 1800 compared with that of WAE-MMD "
                 "(above 2300) across all values of the regularization coefficient [λ]. This shows that MoCA converges "
                 "faster than WAE-MMD.")
_K = ("appendix D.5", "We find that the FID score is stable and small across the various values of [K] chosen, except "
                      "for [K = 100], for which FID is much worse.")
QUOTES = {
    "fig2_left": ("§4.1", "These SWD estimates are shown in figure 2. As evident, the contrastive objective converges "
                          "significantly faster."),
    "fig2_right_early": _FAST,
    "fig2_right_early_fid": _FAST,
    "fig2_right_curve": _FAST,
    "fig2_right_final": ("§4.1", "Better approximation: the final SWD values of MoCA are significantly lower than those "
                                 "of WAE-MMD across the corresponding [λ] values."),
    "fig2_right_lambda": ("§4.1", "Stable optimization: larger values of [λ] result in smaller values of SWD for MoCA but "
                                  "this is not always true for WAE-MMD"),
    "fig3": ("§4.2", "As Figure 4 shows, for models trained with larger [λ], the singular values (and therefore the "
                     "latent distribution) become more uniform."),
    "fig3_fid": ("§4.2", "Corresponding FID scores on generated samples reflect this effect since models trained with "
                         "larger [λ] have lower (better) FID scores."),
    "fig4": ("§4.2", "However, as [d] is set to larger values, a significantly larger value of [λ] is required to reach "
                     "a similar FID score."),
    "fig7": ("§4.2", "We find that despite its simplicity, MoCA learns perceptually distinguishable class clusters "
                     "similar to [S]-VAE."),
    "fig8": ("appendix D.1", "We find that larger values of [λ] in fact help reduce the reconstruction loss even more."),
    "fig9": ("appendix D.2", "We find that the optimal value of [λ] is roughly proportional to the number of pixels in "
                             "the input (Table 4)."),
    "fig10_tau": ("appendix D.4", "Thus for larger temperature, the estimated distribution becomes smoother and the "
                                  "entropy estimation becomes poor, which should result in poor quality of generated "
                                  "samples."),
    "fig10_lambda": ("appendix D.4", "Additionally, for larger [τ], intuitively, a larger [λ] should be needed in order "
                                     "to push the KDE samples apart from one another."),
    "table1": ("§4.4", "We find that MoCA outperforms all of the methods except WAE-GAN, which uses GAN objective for "
                       "matching the latent space distribution to the prior."),
    "table2": ("Abstract", "This is also reflected in the FID scores on CelebA and CIFAR-10 datasets"),
    "table3_low": ("appendix D.3", "We find that FID scores are much worse when [m] is not close to 1."),
    "table3_high": ("appendix D.3, Table 3", "| FID | 86.57 | 98.97 | 47.96 | 47.46 |"),
    "table5_small": _K,
    "table5_stable": _K,
}
CLAIMS = [replace(c, section=QUOTES[c.id][0], quote=QUOTES[c.id][1]) for c in CLAIMS]


# The λ-trend claims read over λ ≤ the best λ (by FID) of their study: the paper's λ range maps to the twin's
# range above its optimum (sweeps/fair/DESIGN.md), where a regularizer too strong for the budget can reverse any
# trend; these rows read the same trends below the optimum. Reported beside the claims, not instead of them.
# The best λ is the one of lowest FID, so §4.2's FID trend is not read this way (it would be selected to hold).
BELOW_BEST: list[Claim] = [
    Claim("fig3_below", "fig3", "Fig. 3 below the best λ: more isotropic latents",
          "(the claim of Fig. 3, read over λ ≤ the best λ)", "spectral entropy rises with λ over λ ≤ the best λ "
          "(trend rule)", ("lambda",), "as Fig. 3", _below_best("lambda", "latent_sv_entropy", False, "spectral entropy")),
    Claim("fig8_below", "fig8", "Fig. 8 below the best λ: lower reconstruction error",
          "(the claim of Fig. 8, read over λ ≤ the best λ)", "final test reconstruction error falls as λ grows over "
          "λ ≤ the best λ", ("lambda",), "as Fig. 8", _below_best("lambda", "test_recon", True, "test reconstruction")),
    Claim("fig2_right_lambda_below", "fig2_right", "Fig. 2 (right) below the best λ: smaller SWD for MoCA",
          "(the claim of Fig. 2 (right), read over λ ≤ MoCA's best λ)", "final image SWD of MoCA falls as λ grows "
          "over λ ≤ the best λ", ("convergence",), "as Fig. 2 (right)",
          _below_best("convergence", "image_swd", True, "MoCA final image SWD", method__name="moca")),
]


# ------------------------------------------------------------------ Fig. 2 (right) diagnosis


def _matched(metric: str, final: bool):
    def run(ctx: Ctx) -> None:
        epoch = None if final else first_epoch_at(ctx.data, "convergence", 0.05)
        if not final and epoch is None:
            return
        for lam in ctx.grid("convergence", "method.weight", method__name="moca"):
            big = 40 * lam
            a = ctx.values("convergence", metric, f"moca λ={value_text(lam)}", epoch, method__name="moca",
                           method__weight=lam)
            b = ctx.values("convergence_matched", metric, f"mmd λ={value_text(big)}", epoch, method__name="mmd",
                           method__weight=big)
            when = "final" if final else f"epoch {epoch}"
            ctx.out.numbers.append(f"{when}: MoCA λ={value_text(lam)} {summarize(a).text()}, "
                                   f"WAE-MMD λ={value_text(big)} {summarize(b).text()}")
            ctx.out.comparisons.append(Comparison(LESS, f"MoCA λ={value_text(lam)}", f"WAE-MMD λ={value_text(big)}",
                                                  a, b, f"{when} {metric}"))
    return run


def _reg_ratio(ctx: Ctx) -> None:
    """MoCA's regularizer value over WAE-MMD's at equal λ (epoch means of ``reg``)."""
    for epoch in (1, None):
        for lam in ctx.grid("convergence", "method.weight"):
            a = ctx.values("convergence", "reg", f"moca λ={value_text(lam)}", epoch, method__name="moca",
                           method__weight=lam)
            b = ctx.values("convergence", "reg", f"mmd λ={value_text(lam)}", epoch, method__name="mmd",
                           method__weight=lam)
            if a and b and np.mean(b) > 0:
                when = "last epoch" if epoch is None else f"epoch {epoch}"
                ctx.out.numbers.append(f"{when}, λ={value_text(lam)}: MoCA reg {np.mean(a):.3g} / WAE-MMD reg "
                                       f"{np.mean(b):.3g} = {np.mean(a) / np.mean(b):.0f}×")


def _gap_per_epoch(ctx: Ctx) -> None:
    """Mean image SWD of MoCA minus WAE-MMD at equal λ, per epoch (does the gap close?)."""
    curves = ctx.data.curves("convergence")
    if curves.empty or "image_swd" not in curves.columns:
        return
    for lam in ctx.grid("convergence", "method.weight"):
        gaps = []
        for epoch in sorted(curves["epoch"].unique()):
            a = ctx.values("convergence", "image_swd", f"moca λ={value_text(lam)}", int(epoch), method__name="moca",
                           method__weight=lam)
            b = ctx.values("convergence", "image_swd", f"mmd λ={value_text(lam)}", int(epoch), method__name="mmd",
                           method__weight=lam)
            if a and b:
                gaps.append(f"{int(epoch)}: {np.mean(a) - np.mean(b):+.0f}")
        ctx.out.numbers.append(f"λ={value_text(lam)}, epoch: MoCA − WAE-MMD image SWD = " + ", ".join(gaps))


def _batch_norm(ctx: Ctx) -> None:
    """Batch-norm layers in the model of the convergence study (none: no running statistics to lag)."""
    import torch

    from harness.archs import ARCHS
    from harness.config import ModelConfig

    runs = ctx.data.runs("convergence")
    arch = str(runs["model.arch"].iloc[0]) if not runs.empty and "model.arch" in runs.columns else "small_conv"
    width = int(runs["model.width"].iloc[0]) if not runs.empty and "model.width" in runs.columns else 16
    model = ARCHS.get(arch)(ModelConfig(arch=arch, width=width, latent_dim=16), (1, 28, 28))
    n = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    ctx.out.numbers.append(f"batch-norm layers in {arch} (width {width}): {n}")


DIAGNOSIS: list[Claim] = [
    Claim("diag_batch_norm", "fig2_right", "Batch-norm lag",
          "(hypothesis) evaluation in eval mode with lagging batch-norm statistics hides MoCA's early progress",
          "count the batch-norm layers of the study's model", ("convergence",), "-", _batch_norm, True),
    Claim("diag_reg_ratio", "fig2_right", "λ on each method's scale: the measured ratio",
          "(measurement) at equal λ, how much larger is MoCA's regularizer value than WAE-MMD's?",
          "epoch mean of the unweighted regularizer (`reg`) of MoCA over WAE-MMD's at the same λ",
          ("convergence",), "-", _reg_ratio, True),
    Claim("diag_matched_early", "fig2_right", "Matched λ: faster convergence (image SWD)",
          "(hypothesis) with WAE-MMD's λ on its own scale (40× MoCA's), MoCA's SWD is lower at the first evaluation",
          "image SWD at the first evaluation: MoCA λ lower than WAE-MMD 40λ", ("convergence", "convergence_matched"),
          "as Fig. 2 (right)", _matched("image_swd", False)),
    Claim("diag_matched_early_fid", "fig2_right", "Matched λ: faster convergence (domain FID)",
          "(hypothesis) the same with the domain FID", "domain FID at the first evaluation: MoCA λ lower than "
          "WAE-MMD 40λ", ("convergence", "convergence_matched"), "as Fig. 2 (right)", _matched(FID, False)),
    Claim("diag_matched_final", "fig2_right", "Matched λ: final image SWD",
          "(hypothesis) with matched λ, MoCA's final SWD is lower", "final image SWD: MoCA λ lower than WAE-MMD 40λ",
          ("convergence", "convergence_matched"), "as Fig. 2 (right)", _matched("image_swd", True)),
    Claim("diag_matched_final_fid", "fig2_right", "Matched λ: final domain FID",
          "(hypothesis) with matched λ, MoCA's final FID is lower", "final domain FID: MoCA λ lower than WAE-MMD 40λ",
          ("convergence", "convergence_matched"), "as Fig. 2 (right)", _matched(FID, True)),
    Claim("diag_budget", "fig2_right", "Step budget: the gap per epoch",
          "(measurement) does the gap between MoCA and WAE-MMD close as training goes on?",
          "mean image SWD of MoCA minus WAE-MMD at equal λ, per epoch", ("convergence",), "-", _gap_per_epoch, True),
]

def diagnosis_text(data: Data) -> str:
    """What the diagnosis found, stated from the verdicts of the rows below (not typed in)."""
    from harness.reproduce.stats import verdict

    by_id = {c.id: c for c in CLAIMS + DIAGNOSIS}
    v = {cid: verdict(by_id[cid].evaluate(data).comparisons)
         for cid in ("fig2_right_early", "fig2_right_early_fid", "fig2_right_final", "diag_matched_early",
                     "diag_matched_early_fid", "diag_matched_final", "diag_matched_final_fid")}
    bn = by_id["diag_batch_norm"].evaluate(data).numbers
    ratio = by_id["diag_reg_ratio"].evaluate(data).numbers
    lines = [
        "The question (issue 9, item 4): the paper finds MoCA's image SWD below WAE-MMD's from epoch 5 on; the "
        "first CPU-scale sweep of this harness (MNIST, 8 epochs, 2026-11-21) did not. Four explanations were "
        "examined with the runs of `sweeps/convergence.yaml` and `sweeps/convergence_matched.yaml` (rows below; "
        "every number is recomputed from the run folders):",
        "",
        f"1. **Batch-norm lag** (evaluation in eval mode with running statistics that trail the weights): "
        f"{bn[0] if bn else 'not measured'}. The twin's model has no batch norm, so its evaluations cannot lag; "
        "this explanation is excluded by construction at CPU scale (it matters for the paper's A1/A2, which have "
        "batch norm).",
        "2. **The metric**: image SWD on 500 images at one pyramid level is noisy and blind to mode loss, so the "
        f"claim is also tested with the domain FID. Equal λ: early SWD: {v['fig2_right_early']}; early FID: "
        f"{v['fig2_right_early_fid']}; final SWD: {v['fig2_right_final']}.",
        "3. **λ on each method's own scale**: at equal λ the two regularizers are not comparable in size "
        f"({'; '.join(ratio[:2]) if ratio else 'ratio not measured'}). With WAE-MMD's λ raised 40-fold: early "
        f"SWD: {v['diag_matched_early']}; early FID: {v['diag_matched_early_fid']}; final SWD: "
        f"{v['diag_matched_final']}; final FID: {v['diag_matched_final_fid']}.",
        "4. **Step budget**: the twin trains 3,120 steps (20 epochs; the paper ~78,000); the per-epoch gap between the "
        "methods is listed in the last row.",
        "",
        "Reading (by the verdicts above): *holds* in the matched rows where the equal-λ rows do not hold would "
        "locate the contradiction in the choice of λ; *does not hold* in both is a negative result of the twin at "
        "this step budget (not a statement about the paper's scale).",
        "",
        "**Finding.** " + _finding(v),
    ]
    return "\n".join(lines)


def _finding(v: dict[str, str]) -> str:
    from harness.reproduce.stats import FAILS, HOLDS, NOT_RUN

    if NOT_RUN in (v["fig2_right_final"], v["diag_matched_final"]):
        return "not enough runs to say (the convergence studies are incomplete)."
    out = []
    if v["fig2_right_final"] == FAILS and v["diag_matched_final"] != FAILS:
        out.append("WAE-MMD's lower final image SWD at equal λ does not survive putting its λ on MoCA's scale "
                   f"(matched: final SWD {v['diag_matched_final']}, final FID {v['diag_matched_final_fid']}). At equal "
                   "λ WAE-MMD's term is tens of times smaller, so that run is closer to a plain autoencoder; the "
                   "reversal of the paper's Fig. 2 (right) at CPU scale is an artefact of comparing the methods at "
                   "the same number λ.")
    elif v["fig2_right_final"] == FAILS:
        out.append("WAE-MMD's lower final image SWD persists with its λ on MoCA's scale: a negative result of the "
                   "twin for the paper's 'better approximation' claim.")
    if HOLDS not in (v["fig2_right_early"], v["diag_matched_early"], v["fig2_right_early_fid"],
                     v["diag_matched_early_fid"]):
        out.append("Neither at equal nor at matched λ is MoCA ahead at the first evaluation (SWD or FID): the twin "
                   "gives no evidence for the paper's faster convergence, and none against it beyond the "
                   "resolution of the seeds spent; early in training both methods are still dominated by learning to "
                   "reconstruct (see the epoch-1 numbers in the rows below).")
    return " ".join(out) or "see the rows below."
