"""The statistical rule of REPRODUCTION.md: paired and Welch intervals over seeds, comparisons, verdicts.

Stated once at the top of the report (:data:`RULE`):

* each setting is run with several seeds (3 in every CPU-scale study); a setting's number is
  the mean over its seeds with a 95 % Student-t confidence interval;
* a **comparison** of two settings A and B uses a 95 % confidence interval of mean(A) − mean(B):

  - the **paired** interval (:func:`paired_interval`, Student t with n − 1 degrees of freedom
    on the per-seed differences A_s − B_s) when both settings were run with the same seeds
    (at least two in common): a seed fixes the initialisation, the data order and the
    evaluation samples, so runs that share a seed are strongly correlated across settings
    and the pairing removes that shared noise; equivalently a two-sided paired t-test at
    α = 0.05 (scipy.stats.ttest_rel);
  - the unpaired **Welch** interval (:func:`welch_interval`, Welch-Satterthwaite degrees of
    freedom) otherwise; it is shown beside the paired one in the details;

  and then

  - "A lower than B": *supports* when the interval lies below 0, *contradicts* when it lies
    above 0, *undecided* otherwise;
  - "A about equal to B" (margin δ, 10 % of B's mean unless a claim says otherwise):
    *supports* when the interval lies inside (−δ, δ), *contradicts* when it lies entirely
    outside [−δ, δ], *undecided* otherwise;
  - "A not worse than B" (non-inferiority, margin δ, lower is worse when higher is better):
    *supports* when the interval lies above −δ, *contradicts* when it lies below −δ;

* a trend over more than two settings ("the metric falls as λ grows") compares the two ends
  in the claimed direction and checks each neighbouring pair for a significant reversal
  (a *guard*: it can contradict the claim, but an undecided neighbouring pair does not
  block it);
* the **edge rule**: a claim about the best setting of a grid (e.g. "the best λ grows with
  the latent dimension") whose best setting lies on either edge of the grid cannot be tested
  by that grid, because the true optimum may lie outside it. It gets its own verdict,
  *untestable on this grid* (:class:`GridEdge`), whichever edge it is and whatever the other
  comparisons say: never *does not hold*;
* a claim is a list of comparisons; its **verdict** is *untestable on this grid* when a
  best setting lies on a grid edge, else *holds* when every comparison that is not a guard
  supports it, *does not hold* when at least one comparison contradicts it, *inconclusive at
  the seed cap* when every open comparison has the cap of seeds, and *inconclusive* otherwise
  (including when a comparison has fewer than two seeds on a side);
* a paired comparison is decided by the **sequential rule** (:func:`sequential_decision`):
  the paired interval at 1 − α/len(LOOKS) with the seeds of its last look, so that the seeds
  ``make reproduce --sequential`` adds where a comparison is undecided keep the error rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.stats

SUPPORTS, CONTRADICTS, UNDECIDED = "supports", "contradicts", "undecided"
HOLDS, FAILS, INCONCLUSIVE, NOT_RUN = "holds", "does not hold", "inconclusive", "not run"
UNTESTABLE = "untestable on this grid"  # the edge rule (GridEdge)
AT_CAP = "inconclusive at the seed cap"  # undecided with the cap of seeds (LOOKS[-1]) on every open comparison
LESS, EQUAL, NOT_WORSE = "less", "equal", "not_worse"
ALPHA = 0.05
LOOKS = (3, 5, 7, 10)  # seeds per setting at each look; the last is the cap

RULE = (
    "Every setting is trained with 3 seeds first, more where the sequential rule below asks for them; a number "
    "is the mean over seeds with its 95 % Student-t confidence interval. Two settings A and B are compared by a "
    "confidence interval of mean(A) − mean(B): the **paired** interval (Student t on the per-seed differences A_s − B_s, n − 1 "
    "degrees of freedom; a two-sided paired t-test at α = 0.05) when both were run with the same seeds "
    "(at least two in common), because runs that share a seed share their initialisation, data order and "
    "evaluation samples and are strongly correlated across settings; the unpaired Welch interval "
    "(Welch-Satterthwaite degrees of freedom, 95 %) otherwise. A paired comparison is decided by the "
    f"sequential rule below: its paired interval at the level 1 − α/{len(LOOKS)} = {100 * (1 - ALPHA / len(LOOKS)):g} % "
    "with the seeds of its last look. The details list the 95 % paired and Welch intervals of every comparison "
    "and the corrected interval that decided it. "
    "\"A lower than B\" is supported when the interval lies below 0 and contradicted when it "
    "lies above 0. \"A about equal to B\" (margin δ = 10 % of B's mean) is supported when the "
    "interval lies inside (−δ, δ) and contradicted when it lies entirely outside [−δ, δ]. "
    "\"A not worse than B\" (margin δ) is supported when the interval lies above −δ and "
    "contradicted when it lies below −δ. Anything else is undecided. A trend over more than two "
    "settings compares its two ends in the claimed direction and checks each neighbouring pair "
    "for a significant reversal (a reversal contradicts; an undecided neighbouring pair does not "
    "count). **Edge rule**: a claim about the best setting of a grid (the best λ per latent dimension, "
    "input size or τ) whose best setting lies on either edge of its grid is **untestable on this grid** "
    "(the optimum may lie outside it), both edges alike, whatever the comparisons say. Otherwise a claim, "
    "a list of such comparisons, **holds** when every comparison supports it, **does not hold** when "
    "at least one contradicts it, **inconclusive at the seed cap** when every comparison left open reached the "
    "cap of seeds, and **inconclusive** otherwise (a comparison that wanted more seeds than the time budget gave).")


def _clean(values) -> np.ndarray:
    x = np.asarray([v for v in values if v is not None], dtype=float)
    return x[np.isfinite(x)]


@dataclass
class Summary:
    """Mean and 95 % Student-t interval of the values of one setting (one per seed)."""

    n: int
    mean: float
    lo: float
    hi: float

    def text(self, digits: int = 3) -> str:
        if self.n == 0:
            return "no runs"
        fmt = f"{{:.{digits}g}}"
        if self.n == 1:
            return f"{fmt.format(self.mean)} (n=1)"
        return f"{fmt.format(self.mean)} [{fmt.format(self.lo)}, {fmt.format(self.hi)}]"


def summarize(values) -> Summary:
    x = _clean(values)
    if len(x) == 0:
        return Summary(0, math.nan, math.nan, math.nan)
    mean = float(x.mean())
    if len(x) < 2:
        return Summary(1, mean, mean, mean)
    half = float(scipy.stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return Summary(len(x), mean, mean - half, mean + half)


def welch_interval(a, b) -> tuple[float, float, float] | None:
    """(mean(a) − mean(b), lower, upper) of the 95 % Welch interval; None with < 2 values a side."""
    a, b = _clean(a), _clean(b)
    if len(a) < 2 or len(b) < 2:
        return None
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    diff = float(a.mean() - b.mean())
    se = math.sqrt(va + vb)
    if se == 0:
        return diff, diff, diff
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    half = float(scipy.stats.t.ppf(0.975, df) * se)
    return diff, diff - half, diff + half


class SeedValues(list):
    """The values of one setting, one per seed, with the seeds (``.seeds``, same order).

    Without seeds (a plain list, or ``seeds`` empty) the values are compared unpaired (Welch)."""

    def __init__(self, values=(), seeds=(), ids=(), study: str | None = None):
        super().__init__(values)
        self.seeds = list(seeds)
        self.ids = list(ids)  # the run ids behind the values (the sequential driver adds seeds to them)
        self.study = study
        if self.seeds and len(self.seeds) != len(self):
            raise ValueError(f"{len(self)} values but {len(self.seeds)} seeds")


def _pairs(a, b) -> tuple[np.ndarray, np.ndarray] | None:
    """The values of ``a`` and ``b`` at their common seeds (finite on both sides), or None
    when either has no seeds; a seed listed twice on a side makes the pairing ambiguous (None)."""
    sa, sb = getattr(a, "seeds", None), getattr(b, "seeds", None)
    if not sa or not sb or len(set(sa)) != len(sa) or len(set(sb)) != len(sb):
        return None
    da, db = dict(zip(sa, a)), dict(zip(sb, b))
    common = [s for s in sa if s in db and da[s] is not None and db[s] is not None
              and math.isfinite(float(da[s])) and math.isfinite(float(db[s]))]
    return (np.asarray([float(da[s]) for s in common]), np.asarray([float(db[s]) for s in common]))


def paired_interval(a, b) -> tuple[float, float, float] | None:
    """(mean(a − b), lower, upper) of the 95 % paired Student-t interval over common seeds.

    ``a`` and ``b`` are :class:`SeedValues`; None without seeds or with fewer than two
    common seeds. Equals scipy.stats.ttest_rel(a, b).confidence_interval(0.95)."""
    pairs = _pairs(a, b)
    if pairs is None or len(pairs[0]) < 2:
        return None
    d = pairs[0] - pairs[1]
    diff = float(d.mean())
    sd = float(d.std(ddof=1))
    if sd == 0:
        return diff, diff, diff
    half = float(scipy.stats.t.ppf(0.975, len(d) - 1) * sd / math.sqrt(len(d)))
    return diff, diff - half, diff + half


def paired_differences(a, b) -> np.ndarray:
    """Per-seed differences a_s − b_s at the common seeds (empty without seeds)."""
    pairs = _pairs(a, b)
    return np.asarray([]) if pairs is None else pairs[0] - pairs[1]


def decide(kind: str, interval: tuple[float, float, float] | None, margin: float = 0.0,
           higher_is_better: bool = False) -> str:
    """supports / contradicts / undecided for an interval of mean(A) − mean(B) (module docstring)."""
    if interval is None:
        return UNDECIDED
    _, lo, hi = interval
    d = margin
    if kind == LESS:
        return SUPPORTS if hi < 0 else CONTRADICTS if lo > 0 else UNDECIDED
    if kind == EQUAL:
        if -d < lo and hi < d:
            return SUPPORTS
        return CONTRADICTS if (lo > d or hi < -d) else UNDECIDED
    if kind == NOT_WORSE:  # "a not worse than b"
        if higher_is_better:
            return SUPPORTS if lo > -d else CONTRADICTS if hi < -d else UNDECIDED
        return SUPPORTS if hi < d else CONTRADICTS if lo > d else UNDECIDED
    raise ValueError(f"unknown comparison kind {kind!r}")


# ------------------------------------------------------------------ the sequential seed rule

CONTINUE, DECIDED, CAP_REACHED = "continue", "decided", "cap reached"
SEQUENTIAL_RULE = (
    "Sequential seeds (pre-registered; `python -m harness.reproduce --sequential`): a comparison between "
    f"settings that share seeds is looked at with {', '.join(map(str, LOOKS[:-1]))} and {LOOKS[-1]} seeds per "
    f"setting ({LOOKS[-1]} is the cap); at each look the paired interval is taken at the level 1 − α/{len(LOOKS)} "
    f"(α = {ALPHA}: Bonferroni over the {len(LOOKS)} looks, so that the chance of deciding a comparison with no "
    "effect, over all looks together, is at most α), and the comparison stops as soon as it is decided; a "
    "comparison still undecided gets the next batch of seeds, and one undecided at the cap is *inconclusive at "
    "the seed cap*.")


@dataclass
class Sequential:
    """Where the sequential rule stands for one comparison."""

    state: str  # CONTINUE | DECIDED | CAP_REACHED
    outcome: str  # SUPPORTS | CONTRADICTS | UNDECIDED at the last look
    n: int  # seeds used at the last look (0 before the first)
    next_n: int | None  # seeds per setting wanted next (CONTINUE only)
    interval: tuple[float, float, float] | None  # at the corrected level


def t_interval(x, level: float) -> tuple[float, float, float] | None:
    """(mean, lower, upper) of the two-sided Student-t interval of ``x`` at ``level``; None with < 2 values."""
    x = _clean(x)
    if len(x) < 2:
        return None
    mean, sd = float(x.mean()), float(x.std(ddof=1))
    half = float(scipy.stats.t.ppf(0.5 + level / 2, len(x) - 1) * sd / math.sqrt(len(x))) if sd > 0 else 0.0
    return mean, mean - half, mean + half


def sequential_decision(diffs, kind: str = LESS, margin: float = 0.0, higher_is_better: bool = False,
                        looks: tuple[int, ...] = LOOKS, alpha: float = ALPHA) -> Sequential:
    """The sequential seed rule, a pure function of the per-seed paired differences so far.

    ``diffs``: A_s − B_s in the order the seeds were added. The look is the largest entry of
    ``looks`` not above ``len(diffs)`` (only the first that many differences are used, so a
    comparison is never decided between looks); at it the paired interval is taken at the
    level 1 − alpha / len(looks) (Bonferroni over the looks: the probability that a comparison
    with no effect is decided at any look is at most ``alpha``) and decided as in
    :func:`decide`. Returns DECIDED, CONTINUE (with the next look's seed count) or CAP_REACHED."""
    d = _clean(diffs)
    done = [k for k in looks if k <= len(d)]
    if not done:
        return Sequential(CONTINUE, UNDECIDED, 0, looks[0], None)
    n = done[-1]
    interval = t_interval(d[:n], 1 - alpha / len(looks))
    outcome = decide(kind, interval, margin, higher_is_better)
    if outcome != UNDECIDED:
        return Sequential(DECIDED, outcome, n, None, interval)
    if n >= looks[-1]:
        return Sequential(CAP_REACHED, outcome, n, None, interval)
    return Sequential(CONTINUE, outcome, n, next(k for k in looks if k > n), interval)


@dataclass
class Comparison:
    """One comparison of two settings (``a`` and ``b``: the values of their seeds)."""

    kind: str  # LESS | EQUAL | NOT_WORSE
    a_label: str
    b_label: str
    a: list
    b: list
    metric: str
    margin: float | None = None  # EQUAL / NOT_WORSE: δ in the metric's units
    higher_is_better: bool = False  # NOT_WORSE only
    guard: bool = False  # counts only when it contradicts (neighbouring pairs of a trend)
    outcome: str = field(init=False)
    interval: tuple[float, float, float] | None = field(init=False)  # the 95 % interval (paired, else Welch)
    corrected: tuple[float, float, float] | None = field(init=False)  # paired: the interval at 1 − α/len(LOOKS)
    state: str | None = field(init=False)  # paired: CONTINUE | DECIDED | CAP_REACHED (sequential rule)
    seeds: int = field(init=False)  # paired: the seeds of the look that decided (or the last look)
    welch: tuple[float, float, float] | None = field(init=False)  # unpaired, always shown
    paired: bool = field(init=False)  # True when ``interval`` is the paired interval

    def __post_init__(self):
        self.welch = welch_interval(self.a, self.b)
        paired = paired_interval(self.a, self.b)
        self.paired = paired is not None
        self.interval = paired if self.paired else self.welch
        self.state = None
        if self.paired:  # the pre-registered sequential rule decides (SEQUENTIAL_RULE): corrected level, looks
            seq = self.sequential()
            self.outcome, self.state, self.seeds = seq.outcome, seq.state, seq.n
            self.corrected = seq.interval
        else:
            self.outcome, self.seeds, self.corrected = self._decide(), 0, None

    @property
    def delta(self) -> float:
        """The margin δ of EQUAL / NOT_WORSE: given, or 10 % of B's mean."""
        return self.margin if self.margin is not None else 0.1 * abs(summarize(self.b).mean)

    def _decide(self) -> str:
        return decide(self.kind, self.interval, self.delta, self.higher_is_better)

    def sequential(self, looks: tuple[int, ...] | None = None, alpha: float | None = None) -> "Sequential":
        """The sequential rule (:func:`sequential_decision`) on this comparison's paired differences."""
        return sequential_decision(paired_differences(self.a, self.b), self.kind, self.delta, self.higher_is_better,
                                   looks or LOOKS, ALPHA if alpha is None else alpha)

    def text(self) -> str:
        rel = {LESS: "<", EQUAL: "≈", NOT_WORSE: "not worse than"}[self.kind]
        sa, sb = summarize(self.a), summarize(self.b)
        if self.interval is None:
            diff = "difference: too few seeds"
        elif self.paired:
            d, lo, hi = self.interval
            n = len(paired_differences(self.a, self.b))
            diff = f"paired diff {d:.3g} [{lo:.3g}, {hi:.3g}] (n={n})"
            if self.corrected is not None:
                level = 100 * (1 - ALPHA / len(LOOKS))
                diff += f", at {level:g} % with the first {self.seeds} seeds [{self.corrected[1]:.3g}, {self.corrected[2]:.3g}]"
            if self.welch is not None:
                diff += f"; Welch [{self.welch[1]:.3g}, {self.welch[2]:.3g}]"
        else:
            d, lo, hi = self.interval
            diff = f"Welch diff {d:.3g} [{lo:.3g}, {hi:.3g}]"
        margin = ""
        if self.kind in (EQUAL, NOT_WORSE):
            m = self.margin if self.margin is not None else 0.1 * abs(sb.mean)
            margin = f", δ = {m:.3g}"
        guard = " (guard)" if self.guard else ""
        cap = " at the seed cap" if self.state == CAP_REACHED else ""
        return (f"{self.metric}{guard}: {self.a_label} {sa.text()} {rel} {self.b_label} {sb.text()}: "
                f"{diff}{margin} → {self.outcome}{cap}")


@dataclass
class GridEdge:
    """The edge rule: the best setting of a grid lies on one of its edges (see the module docstring).

    Listed among a claim's comparisons, it makes the claim *untestable on this grid*.
    ``values``: the seed values of the best setting (so that a claim without data stays
    *not run*)."""

    what: str  # e.g. "latent=4: best λ = 100"
    grid: list
    values: list
    guard: bool = False
    outcome: str = field(init=False, default=UNTESTABLE)

    @property
    def a(self):
        return self.values

    b = a

    def text(self) -> str:
        return (f"{self.what} lies on an edge of the grid {', '.join(f'{g:g}' for g in self.grid)}: "
                f"the optimum may lie outside it → {UNTESTABLE}")


def edge_of(best, grid) -> bool:
    """True when ``best`` is the smallest or the largest value of ``grid`` (both edges alike)."""
    return len(grid) > 0 and (best == min(grid) or best == max(grid))


def verdict(comparisons: list) -> str:
    """holds / does not hold / inconclusive / untestable on this grid (see the module
    docstring); not run without data."""
    comparisons = [c for c in comparisons if len(_clean(c.a)) and len(_clean(c.b))] if any(
        len(_clean(c.a)) and len(_clean(c.b)) for c in comparisons) else []
    if not comparisons:
        return NOT_RUN
    if any(c.outcome == UNTESTABLE for c in comparisons):
        return UNTESTABLE
    if any(c.outcome == CONTRADICTS for c in comparisons):
        return FAILS
    main = [c for c in comparisons if not c.guard]
    if main and all(c.outcome == SUPPORTS for c in main):
        return HOLDS
    open_ = [c for c in main if c.outcome != SUPPORTS]
    if open_ and all(getattr(c, "state", None) == CAP_REACHED for c in open_):
        return AT_CAP
    return INCONCLUSIVE


def seeds_text(comparisons: list) -> str:
    """Seeds per setting behind a claim's verdict (the report's *seeds* column): the largest look of
    its paired comparisons, and why it stopped there when the claim is not decided."""
    paired = [c for c in comparisons if isinstance(c, Comparison) and c.state is not None]
    if not paired:
        return ""
    n = max(c.seeds for c in paired)
    v = verdict(comparisons)
    if v == AT_CAP:
        return f"{n} (cap reached)"
    if v == INCONCLUSIVE:
        return f"{n} (undecided; more seeds wanted)"
    return str(n)


def trend(points: list[tuple[str, list]], metric: str, decreasing: bool) -> list[Comparison]:
    """Comparisons for "the metric falls (``decreasing``) or rises along ``points``".

    ``points``: (label, seed values) in the order of the varied quantity. The extremes are
    compared in the claimed direction, and every consecutive pair too, so that a
    significant reversal anywhere contradicts the trend.
    """
    points = [(label, vals) for label, vals in points if len(_clean(vals))]
    if len(points) < 2:
        return []

    def ordered(p, q, guard=False):  # "p lower than q" in the claimed direction
        return Comparison(LESS, p[0], q[0], p[1], q[1], metric, guard=guard)

    out = [ordered(points[-1], points[0]) if decreasing else ordered(points[0], points[-1])]
    if len(points) > 2:
        for p, q in zip(points[:-1], points[1:]):
            out.append(ordered(q, p, True) if decreasing else ordered(p, q, True))
    return out
