"""Render registered items from ``results/`` and say, for each, what happened.

For each item: load its sweeps (:mod:`harness.figures.results`), keep those with at least one
``done`` run, derive each one's scale from its run configs, draw, and write

* figures: ``<results>/figures/<id>.png``, ``.pdf`` and ``<id>.caption.md``;
* tables: ``<results>/tables/<id>.md`` (caption + table), ``.tex``, ``.csv`` (numbers);

all atomically. The outcome of each item is one of

``rendered``  every sweep of the item had results and every run was done;
``partial``   drawn, but a sweep is missing or some runs are not done / unreadable (the caption
              and the report say which);
``missing``   no sweep of the item has a done run: nothing is written, the report gives the
              command that produces the results;
``error``     results exist but the item could not be drawn (a metric not logged, an unreadable
              sweep folder, or a crash): the report says why, and the exit status is 1.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from harness.atomic import atomic_write, write_text  # noqa: E402
from harness.figures.base import (  # noqa: E402
    CPU_SCALE, FigureOut, Item, ItemData, SweepRef, TableOut, config_values, derive_scale,
)
from harness.figures.results import ItemDataError, ResultsUnreadable, SweepResults, load_sweep_results  # noqa: E402
from harness.figures.tables import latex_table, markdown_table  # noqa: E402

RENDERED, PARTIAL, MISSING, ERROR = "rendered", "partial", "missing", "error"


@dataclass
class Outcome:
    item: Item
    state: str
    files: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what is missing or wrong, one line each
    missing: list[SweepRef] = field(default_factory=list)  # sweeps without done runs
    scale: str = ""


def _sweep_summary(s: SweepResults) -> str:
    counts = s.status_counts()
    total = sum(counts.values())
    others = ", ".join(f"{n} {state}" for state, n in sorted(counts.items()) if state != "done")
    return f"{counts.get('done', 0)} of {total} runs done" + (f" ({others})" if others else "")


def _caption(item: Item, data: ItemData, deviations: dict[str, list[str]], missing: list[SweepRef],
             notes: list[str], problems: list[str]) -> str:
    lines = [f"# {item.id}: {item.title} ({data.title_scale})", "", f"Paper: {item.measures}.", ""]
    files = {ref.name: ref.file for ref in item.sweeps}
    for s in data.sweeps:
        dev = deviations[s.name]
        scale = data.scales[s.name]
        if dev:
            why = "differs from the paper's setting: " if scale == CPU_SCALE else ""
            scale += f" ({why}{'; '.join(dev)})"
        lines.append(f"- Sweep `{files.get(s.name, f'sweeps/{s.name}.yaml')}` → `{s.folder}` (read from {s.source}): {scale}. "
                     f"{_sweep_summary(s)}; only done runs are shown. "
                     f"{config_values([s], ['data.name', 'model.arch', 'train.epochs', 'data.train_limit'])}.")
    for ref in missing:
        lines.append(f"- Not included (no done runs yet): `{ref.file}` ({ref.intended}); "
                     f"produce it with `{ref.command}`.")
    lines += [f"- {n}" for n in notes]
    lines += [f"- Assumption: {a}." for a in item.assumptions]
    if problems:
        lines.append("- Problems while reading the results: " + " | ".join(problems))
    return "\n".join(lines) + "\n"


def _save_figure(fig, stem: Path, title: str) -> list[Path]:
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    files = []
    for ext, meta in (("png", {"Software": None}), ("pdf", {"CreationDate": None, "Producer": None})):
        path = stem.with_suffix(f".{ext}")
        atomic_write(path, lambda f, ext=ext, meta=meta: fig.savefig(f, format=ext, dpi=150, metadata=meta), mode="wb")
        files.append(path)
    plt.close(fig)
    return files


def _write_table(out: TableOut, stem: Path, caption: str, title: str) -> list[Path]:
    files = [stem.with_suffix(".md"), stem.with_suffix(".tex"), stem.with_suffix(".csv")]
    write_text(files[0], caption + "\n" + markdown_table(out.display))
    write_text(files[1], latex_table(out.display, title, f"tab:{stem.name}"))
    write_text(files[2], out.data.to_csv(index=False))
    return files


def _load(item: Item, results: Path) -> tuple[list[SweepResults], list[SweepRef], list[str], list[str]]:
    """(sweeps with done runs, sweeps without, notes on sweeps without, errors)."""
    present, missing, notes, errors = [], [], [], []
    for ref in item.sweeps:
        try:
            s = load_sweep_results(results, ref.name)
        except ResultsUnreadable as e:
            errors.append(str(e))
            missing.append(ref)
            continue
        if s is None:
            missing.append(ref)
            where = "" if Path(ref.file).is_file() else " (sweep file not written yet)"
            notes.append(f"{ref.name}: no results in {results / ref.name}{where}")
        elif s.done_runs.empty:
            missing.append(ref)
            notes.append(f"{ref.name}: {_sweep_summary(s)} in {s.folder}")
        else:
            present.append(s)
    return present, missing, notes, errors


def render_item(item: Item, results: str | Path = "results") -> Outcome:
    results = Path(results)
    present, missing, notes, errors = _load(item, results)
    if errors and not present:
        return Outcome(item, ERROR, notes=errors + notes, missing=missing)
    if not present:
        return Outcome(item, MISSING, notes=notes, missing=missing)

    scales, deviations = {}, {}
    for s in present:
        scales[s.name], deviations[s.name] = derive_scale(item, s.done_configs(), len(s.done_runs))
    data = ItemData(item, present, scales)
    try:
        out = item.draw(data)
        problems = [p for s in present for p in s.problems] + errors
        caption = _caption(item, data, deviations, missing, out.notes, problems)
        datasets = config_values(present, ["data.name"]).split(" = ", 1)[1]
        title = f"{item.title} — {data.title_scale}, {datasets}"
        if isinstance(out, FigureOut):
            files = _save_figure(out.figure, results / "figures" / item.id, title)
            files.append(results / "figures" / f"{item.id}.caption.md")
            write_text(files[-1], caption)
        else:
            files = _write_table(out, results / "tables" / item.id, caption, title)
    except ItemDataError as e:
        plt.close("all")
        return Outcome(item, ERROR, notes=[str(e), *errors, *notes], missing=missing)
    except Exception as e:  # a bug in a drawing function, or a write that failed: report it, go on
        plt.close("all")
        return Outcome(item, ERROR, notes=[f"crashed: {type(e).__name__}: {e}", *errors, *notes,
                                           traceback.format_exc()], missing=missing)

    incomplete = [s for s in present if s.status_counts().get("done", 0) < len(s.runs)]
    left_out = [n for n in out.notes if "left out" in n]
    partial_notes = notes + [f"{s.name}: {_sweep_summary(s)}" for s in incomplete] + problems + left_out
    state = PARTIAL if (missing or incomplete or problems or left_out) else RENDERED
    return Outcome(item, state, files, partial_notes if state == PARTIAL else [], missing, data.title_scale)
