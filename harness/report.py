"""A sweep's report: one static HTML page (``python -m harness.report results/<sweep>``).

    python -m harness.report results/<sweep> [--out FILE] [--no-figures] [--link-images]

writes ``<sweep>/report.html`` (atomically), one self-contained file, with

* the sweep's name, description and file, and the **status counts** (done, running, failed, ...);
* the **table of runs** (id, name, varied keys, status, epochs, wall time, final metrics),
  sortable by any column (click a header; numbers sort as numbers; ``#sort=<column>`` or
  ``#sort=-<column>`` in the address sorts on load);
* the **figures**: the default plot of ``python -m harness.plot`` (drawn now, into
  ``<sweep>/plots/``, under the name that plot command gives it) and every other PNG in
  ``<sweep>/plots/``, each figure once (files with the same image are shown once);
* each done run's **image grids** (samples, reconstructions, interpolations, t-SNE) written by
  the ``artifacts`` evaluator, whose rows are labelled (input / reconstruction, endpoints);
* the **failed, diverged and interrupted runs** with the reason in their ``status.json``
  (the first line) and the traceback of ``error.txt`` when there is one.

Images are embedded as ``data:`` URIs and tracebacks inlined, so the page is one file that
can be moved, mailed or attached anywhere; ``--link-images`` links them by relative paths
instead (a smaller page that works from the sweep folder and copies of it). No server and no
network: plain HTML, CSS and a few lines of JavaScript. The page is written inside the sweep
folder unless ``--out`` names a file elsewhere (whose folder must exist). Exit status 0, 2
when the folder is not a sweep or the output cannot be written (a folder, read-only, a missing
parent: one line).
"""

from __future__ import annotations

import base64
import hashlib
import html
import math
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd

from harness.errors import CommandLine
from harness.atomic import write_text
from harness.figures.results import ItemDataError, ResultsUnreadable, load_sweep_results
from harness.run_folder import PathEscape, describe_os_error, inside, read_json_file

REPORT = "report.html"
MAX_TRACEBACK_CHARS = 20_000  # an inlined error.txt keeps its last characters
GRIDS = ["samples.png", "reconstructions.png", "interpolations.png", "tsne.png"]
PROBLEM_STATES = ("failed", "diverged", "interrupted")
STATE_COLOURS = {"done": "#2e7d32", "running": "#1565c0", "queued": "#6a1b9a", "pending": "#757575",
                 "interrupted": "#ef6c00", "diverged": "#c62828", "failed": "#b71c1c"}
HIDDEN_COLUMNS = {"eval_time_s", "step"}

CSS = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; background: #fff; }
h1 { margin-bottom: 4px; } .sub { color: #555; margin-top: 0; }
.counts span { display: inline-block; padding: 4px 10px; margin: 0 6px 6px 0; border-radius: 12px;
               color: #fff; font-weight: 600; }
table.runs { border-collapse: collapse; font-size: 13px; margin: 8px 0 24px; }
table.runs th { background: #dde6f0; cursor: pointer; padding: 6px 8px; text-align: left;
                border-bottom: 2px solid #8aa2bd; white-space: nowrap; }
table.runs th.sorted-asc::after { content: " \\25B2"; } table.runs th.sorted-desc::after { content: " \\25BC"; }
table.runs td { padding: 4px 8px; border-bottom: 1px solid #e3e3e3; white-space: nowrap; }
table.runs td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 12px 0 24px; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { color: #555; font-size: 13px; max-width: 1100px; white-space: pre-wrap; }
.run { margin: 10px 0; } .run summary { font-weight: 600; cursor: pointer; }
.run img { display: block; max-width: 100%; margin: 8px 0; border: 1px solid #ddd; }
.problem { background: #fdecea; padding: 6px 10px; margin: 4px 0; border-left: 4px solid #b71c1c; }
code { background: #f3f3f3; padding: 1px 4px; } .scroll { overflow-x: auto; }
"""

JS = """
function sortTable(table, col, desc) {
  const body = table.tBodies[0];
  const rows = Array.from(body.rows);
  const key = r => { const c = r.cells[col]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent; };
  const num = rows.every(r => key(r) === '' || !isNaN(parseFloat(key(r))));
  rows.sort((a, b) => {
    let x = key(a), y = key(b);
    if (num) { x = x === '' ? Infinity : parseFloat(x); y = y === '' ? Infinity : parseFloat(y); }
    const c = x < y ? -1 : x > y ? 1 : 0;
    return desc ? -c : c;
  });
  rows.forEach(r => body.appendChild(r));
  Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
    th.classList.remove('sorted-asc', 'sorted-desc');
    if (i === col) th.classList.add(desc ? 'sorted-desc' : 'sorted-asc');
  });
}
document.querySelectorAll('table.runs').forEach(table => {
  Array.from(table.tHead.rows[0].cells).forEach((th, i) => {
    th.addEventListener('click', () => sortTable(table, i, th.classList.contains('sorted-asc')));
  });
  const m = decodeURIComponent(location.hash).match(/^#sort=(-?)(.+)$/);
  if (m) {
    const i = Array.from(table.tHead.rows[0].cells).findIndex(th => th.dataset.col === m[2]);
    if (i >= 0) sortTable(table, i, m[1] === '-');
  }
});
"""


def _e(text) -> str:
    return html.escape(str(text), quote=True)


def _cell(value) -> tuple[str, str, bool]:
    """(shown text, sort value, numeric?) of a table cell."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "", "", False
    if isinstance(value, bool):
        return str(value).lower(), str(value).lower(), False
    if isinstance(value, (int, float)):
        text = f"{value:.4g}" if isinstance(value, float) and not float(value).is_integer() else f"{value:g}"
        return text, repr(float(value)), True
    return str(value), str(value), False


def _rel(path: Path, start: Path) -> str:
    return Path(os.path.relpath(path, start)).as_posix()


class ImageSource:
    """How the page refers to an image file: embedded as a ``data:`` URI (default, one
    self-contained file), or linked relative to the page's folder (``--link-images``)."""

    def __init__(self, base: Path, link: bool):
        self.base, self.link = base, link

    def __call__(self, path: Path) -> str:
        if self.link:
            return _rel(path, self.base)
        return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def runs_table(runs: pd.DataFrame, varied: list[str]) -> str:
    metric_cols = [c for c in runs.columns if c not in ("id", "name", "status", "epochs", "wall_time_s", *varied)
                   and "." not in c and c not in HIDDEN_COLUMNS and pd.api.types.is_numeric_dtype(runs[c])
                   and runs[c].notna().any()]
    from harness.plot import HEADLINE

    metric_cols.sort(key=lambda c: (HEADLINE.index(c) if c in HEADLINE else len(HEADLINE),
                                    c in ("lr", "epoch_time_s") or c.startswith("reg_")))
    named = [k for k in varied if k in runs.columns] or ["name"]  # the varied keys say what the name says
    units = [c for c in runs.columns if c.endswith(("_features", "_features_sha256"))]  # feature spaces (collect)
    columns = ["id", *named, "status", *units, *metric_cols, "epochs", "wall_time_s"]
    head = "".join(f'<th data-col="{_e(c)}">{_e(c)}</th>' for c in columns)
    body = []
    for _, row in runs.iterrows():
        cells = []
        for c in columns:
            text, key, num = _cell(row.get(c))
            style = f' style="color:{STATE_COLOURS.get(text, "#222")};font-weight:600"' if c == "status" else ""
            cls = ' class="num"' if num else ""
            cells.append(f'<td{cls}{style} data-v="{_e(key)}">{_e(text)}</td>')
        body.append(f'<tr id="run-{_e(row["id"])}">{"".join(cells)}</tr>')
    return f'<table class="runs" id="runs"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def default_figure(folder: Path) -> tuple[Path | None, str | None]:
    """Draw ``python -m harness.plot``'s default figure for the sweep, under the name that
    command gives it (so a default plot drawn before is the same file, shown once): (its PNG,
    or None and why not)."""
    import contextlib
    import io

    from harness import plot

    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
            _, files = plot.make(plot.build_parser().parse_args([str(folder)]))
    except (plot.UsageError, ItemDataError) as e:
        return None, str(e)
    except OSError as e:
        return None, describe_os_error(e)
    return next((f for f in files if f.suffix == ".png"), None), None


def _unique(pngs: list[Path]) -> list[Path]:
    """The files of ``pngs`` with distinct contents, first of each kept."""
    seen, kept = set(), []
    for png in pngs:
        digest = hashlib.sha256(png.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            kept.append(png)
    return kept


def _traceback(err: Path, image: ImageSource) -> str:
    """error.txt of a failed run: a link (``--link-images``) or the text itself, inlined."""
    if image.link:
        return f' (traceback: <a href="{_e(_rel(err, image.base))}">error.txt</a>)'
    text = err.read_text(errors="replace")
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "…" + text[-MAX_TRACEBACK_CHARS:]
    return f"<details><summary>traceback (error.txt)</summary><pre>{_e(text)}</pre></details>"


def build(folder: Path, out: Path, figures: bool = True, link_images: bool = False) -> str:
    """The page's HTML for the sweep in ``folder``: images embedded, or linked relative to
    ``out``'s folder with ``link_images``."""
    s = load_sweep_results(folder.parent, folder.name)
    if s is None:
        raise FileNotFoundError(f"{folder}: no such sweep folder")
    manifest = read_json_file(folder / "sweep.json") or {}
    image = ImageSource(out.parent, link_images)
    counts = s.status_counts()
    parts = [f"<h1>{_e(s.name)}</h1>",
             f'<p class="sub">{_e(manifest.get("description") or "")} — sweep file <code>{_e(manifest.get("sweep_file") or "?")}'
             f"</code>; {len(s.runs)} runs; report written {datetime.now(timezone.utc).isoformat(timespec='seconds')}</p>",
             '<h2>Status</h2><div class="counts">'
             + "".join(f'<span style="background:{STATE_COLOURS.get(k, "#555")}">{n} {_e(k)}</span>'
                       for k, n in sorted(counts.items(), key=lambda kv: -kv[1])) + "</div>"]

    problems = []
    for _, row in s.runs.iterrows():
        if row["status"] in PROBLEM_STATES:
            status = read_json_file(folder / row["id"] / "status.json") or {}
            reason = str(status.get("reason") or "no reason recorded").strip().splitlines()
            run = s.run_folder(row["id"])
            err = run / "error.txt" if run is not None else None
            where = _traceback(err, image) if err is not None and err.is_file() else ""
            problems.append(f'<div class="problem"><b>{_e(row["id"])}</b> {_e(row.get("name", ""))}: '
                            f'{_e(row["status"])}: {_e(reason[0] if reason else "")}{where}</div>')
    if problems:
        parts.append(f"<h2>Failed, diverged or interrupted runs ({len(problems)})</h2>" + "".join(problems))

    parts.append("<h2>Runs</h2><p class=\"sub\">Click a column header to sort. Final metrics are the last "
                 "logged epoch of each run.</p><div class=\"scroll\">" + runs_table(s.runs, s.varied_keys) + "</div>")

    default, note = default_figure(folder) if figures and not s.done_runs.empty else (None, None)
    plots = folder / "plots"
    pngs = sorted(plots.glob("*.png")) if plots.is_dir() and _inside_or_none(folder, plots) else []
    pngs = _unique(sorted(pngs, key=lambda p: (p != default, p.name)))
    if pngs or note:
        parts.append("<h2>Figures</h2>")
        if note:
            parts.append(f'<p class="problem">default figure not drawn: {_e(note)}</p>')
        for png in pngs:
            cap = png.with_suffix(".caption.md")
            caption = cap.read_text() if cap.is_file() else png.name
            caption = "\n".join(line for line in caption.splitlines() if not line.startswith("# ")).strip()
            parts.append(f'<figure><img src="{_e(image(png))}" alt="{_e(png.stem)}">'
                         f"<figcaption>{_e(caption)}</figcaption></figure>")

    grids = []
    for n, (_, row) in enumerate(s.done_runs.iterrows()):
        run = s.run_folder(row["id"])
        files = [run / g for g in GRIDS if run is not None and (run / g).is_file()]
        if files:
            imgs = "".join(f'<img src="{_e(image(f))}" alt="{_e(row["id"])} {_e(f.stem)}" title="{_e(f.stem)}">'
                           for f in files)
            grids.append(f'<details class="run"{" open" if not grids else ""}><summary>{_e(row["id"])} — '
                         f'{_e(row.get("name", ""))}</summary>{imgs}</details>')
    if grids:
        parts.append(f"<h2>Image grids of the done runs ({len(grids)})</h2><p class=\"sub\">Click a run to open "
                     "its grids (samples, reconstructions, interpolations, t-SNE).</p>" + "".join(grids))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(s.name)}: sweep report</title><style>{CSS}</style></head><body>"
            + "\n".join(parts) + f"<script>{JS}</script></body></html>\n")


def _inside_or_none(folder: Path, path: Path) -> Path | None:
    try:
        return inside(folder, path)
    except PathEscape:
        return None


def output_file(out: str | None, folder: Path) -> Path:
    """The page's path, checked before anything is built: ``<sweep>/report.html`` (inside the
    sweep folder: a link out of it is refused) or ``--out FILE``, whose folder must exist;
    never a folder. ``ValueError`` (one line) otherwise."""
    if out is None:
        path, flag = folder / REPORT, f"{folder / REPORT} (the default output; choose another with --out FILE)"
        if _inside_or_none(folder, path) is None:
            raise ValueError(f"{flag}: a link out of the sweep folder; allowed: a file inside it")
    else:
        path, flag = Path(out), f"--out {out}"
        if not path.parent.is_dir():
            raise ValueError(f"{flag}: the folder {path.parent} does not exist; allowed: a file in an existing folder")
    if path.is_dir():
        raise ValueError(f"{flag}: is a folder; allowed: a file")
    return path


def main(argv: list[str] | None = None) -> int:
    p = CommandLine(prog="python -m harness.report", description="Write a sweep's HTML report.")
    p.add_argument("sweep", help="sweep folder, e.g. results/my_sweep")
    p.add_argument("--out", default=None, help=f"output file (default: <sweep>/{REPORT})")
    p.add_argument("--no-figures", action="store_true", help="do not draw the default figure")
    p.add_argument("--link-images", action="store_true",
                   help="link images by relative paths instead of embedding them (a smaller page, not self-contained)")
    args = p.parse_args(argv)
    folder = Path(args.sweep)
    try:
        out = output_file(args.out, folder)
        page = build(folder, out, figures=not args.no_figures, link_images=args.link_images)
        write_text(out, page)
    except (FileNotFoundError, ResultsUnreadable, ItemDataError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # read-only folder, full disk, a path component that is a file
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
