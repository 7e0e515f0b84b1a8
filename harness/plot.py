"""Plot or tabulate any sweep without writing Python (docs/figures.md "Your own sweeps").

    python -m harness.plot results/<sweep> [more sweep folders] [--kind curves|line|heatmap|bar|table]
        [--y METRIC ...] [--x KEY|epoch] [--hue KEY ...] [--style KEY] [--col KEY]
        [--logx] [--logy] [--out DIR] [--name NAME]

Examples (names are your sweep's keys):

    python -m harness.plot results/my_sweep                                   # defaults, says what it chose
    python -m harness.plot results/my_sweep --y fid --x method.tau --hue method.weight
    python -m harness.plot results/my_sweep --kind heatmap --y fid --x method.weight --hue method.tau
    python -m harness.plot results/my_sweep --kind table --y fid test_recon

Defaults: ``--y`` the headline metric the runs logged (the first of :data:`HEADLINE` present),
``--kind`` ``curves`` over epochs when no ``--x`` is given and runs logged several epochs,
else ``line`` (``heatmap`` when two keys are named and ``--kind`` is not); ``--x`` the first
numeric varied key; ``--hue`` the other varied keys (``seed`` is always averaged: mean and 95 %
Student's t interval over seeds). Every choice made for you is printed. Keys that vary but are
not named are shown in the legend or panels, never averaged silently. Writes
``<sweep>/plots/<name>.png``, ``.pdf`` and ``.caption.md`` (figures) or ``.md``, ``.tex`` and
``.csv`` (tables), atomically; prints the files. The default name says everything that shapes
the plot (kind, metrics, x, hue, style, col, log axes), so two different plots never share a
file; ``--name`` is a plain file name (no folder, no ``..``). The files stay inside the sweep's
``plots/`` folder unless ``--out`` names another folder (whose parent must exist). Exit status
0, 1 when the results cannot make the plot (the reason in one line), 2 for a bad command line
(unknown metric or key, with the allowed ones) or an output path that cannot be written (a
file, read-only, a missing parent: one line).
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from pathlib import Path

from harness.errors import CommandLine
from harness.figures.base import Item, ItemData, TableOut
from harness.figures.generic import KINDS, PlotSpec, draw_spec, metric_columns, scale_text
from harness.figures.results import ItemDataError, ResultsUnreadable, load_sweep_results
from harness.registry import suggest
from harness.run_folder import PathEscape, describe_os_error, inside

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,149}")
NAME_ALLOWED = "a file name without folder or suffix: letters, digits, '_' and '-', at most 150"
HEADLINE = ["fid", "image_swd", "latent_swd", "test_recon", "kid", "latent_sphere_swd", "recon", "loss"]


class UsageError(ValueError):
    """A bad command line; one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    p = CommandLine(prog="python -m harness.plot", description="Plot or tabulate any sweep's results.",
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("sweeps", nargs="+", help="sweep folder(s), e.g. results/my_sweep")
    p.add_argument("--kind", choices=KINDS, default=None, help="what to draw (default: see below)")
    p.add_argument("--y", nargs="+", default=None, metavar="METRIC", help="metric column(s) (default: the headline one)")
    p.add_argument("--x", default=None, help="x axis: 'epoch' or a config key (default: epoch, else a varied key)")
    p.add_argument("--hue", nargs="+", default=None, metavar="KEY", help="keys drawn as legend entries / heatmap rows")
    p.add_argument("--style", default=None, metavar="KEY", help="a key drawn as line style")
    p.add_argument("--col", default=None, metavar="KEY", help="a key split into panels")
    p.add_argument("--logx", action="store_true")
    p.add_argument("--logy", action="store_true")
    p.add_argument("--out", default=None, help="output folder (default: <first sweep>/plots)")
    p.add_argument("--name", default=None,
                   help="file stem (default: from kind, y, x, hue, style, col and log axes)")
    return p


def _load(paths: list[str]):
    sweeps = []
    for text in paths:
        path = Path(text)
        try:
            s = load_sweep_results(path.parent if str(path.parent) else ".", path.name)
        except ResultsUnreadable as e:
            raise UsageError(str(e)) from None
        if s is None:
            raise UsageError(f"{path}: no such sweep folder (expected results/<sweep>)")
        if s.done_runs.empty:
            raise ItemDataError(f"{path}: no done runs yet ({', '.join(f'{n} {k}' for k, n in s.status_counts().items())})")
        sweeps.append(s)
    return sweeps


def choose(args: argparse.Namespace, sweeps) -> tuple[PlotSpec, list[str]]:
    """The spec for the command line, and one line per default it chose."""
    said: list[str] = []
    varied = list(dict.fromkeys(k for s in sweeps for k in s.varied_keys))
    config_keys = {k for s in sweeps for c in s.configs.values() for k in c}
    runs = [s.done_runs for s in sweeps]
    curves = [s.done_curves for s in sweeps]
    metrics = list(dict.fromkeys(m for df in runs + curves for m in metric_columns(df, config_keys)))
    keys = sorted(config_keys | set(varied))

    def check_key(key: str, flag: str) -> None:
        if key != "epoch" and key not in keys:
            raise UsageError(f"{flag}: unknown key {key!r}{suggest(key, keys)}; varied keys: {', '.join(varied) or 'none'}")

    y = args.y
    if y is None:
        y = [next((m for m in HEADLINE if m in metrics), metrics[0] if metrics else None)]
        if y[0] is None:
            raise UsageError("the done runs logged no metric")
        said.append(f"--y {y[0]} (headline metric; logged: {', '.join(metrics)})")
    for m in y:
        if m not in metrics:
            raise UsageError(f"--y: unknown metric {m!r}{suggest(m, metrics)}; logged: {', '.join(metrics)}")
    for flag, value in (("--x", args.x), ("--style", args.style), ("--col", args.col)):
        if value:
            check_key(value, flag)
    for k in args.hue or []:
        check_key(k, "--hue")

    free = [k for k in varied if k != "seed" and k not in (args.x, args.style, args.col, *(args.hue or []))]
    free.sort(key=lambda k: k != "method.name")  # the method first: the usual legend
    # curves need the metric at several epochs (a metric evaluated only at the end has one point)
    several_epochs = any(df.loc[df[y[0]].notna(), "epoch"].nunique() > 1 for df in curves
                         if "epoch" in df.columns and y[0] in df.columns)
    kind, x = args.kind, args.x
    if kind is None:
        if x in (None, "epoch") and several_epochs:
            kind = "curves"
        elif x is not None and args.hue and x != "epoch":
            kind = "line"
        else:
            kind = "line" if x or free else "table"
        said.append(f"--kind {kind}")
    if kind == "curves":
        if x not in (None, "epoch"):
            raise UsageError(f"--x: curves are drawn over epochs; got {x!r} (use --kind line for a key)")
        x = "epoch"
    elif x is None and kind in ("line", "heatmap", "bar"):
        numeric = [k for k in free if all(isinstance(c.get(k), (int, float)) and not isinstance(c.get(k), bool)
                                          for s in sweeps for c in s.done_configs())]
        pool = numeric or free
        if not pool:
            raise UsageError(f"--x: nothing varies besides seed; use --kind curves or table")
        x = pool[0]
        free.remove(x)
        said.append(f"--x {x} (first {'numeric ' if numeric else ''}varied key)")
        if not numeric and kind == "line" and args.kind is None:
            kind = "bar"  # categories on x: bars, not a line through them
            said.append(f"--kind bar ({x} is not numeric)")
    hue = args.hue
    if hue is None:  # one key; the others join the legend only where they vary within its groups
        hue = free[:1]
        if kind == "heatmap" and not hue:
            raise UsageError("--hue: a heatmap needs a second varied key (rows)")
        said.append(f"--hue {' '.join(hue)}" if hue else "--hue (none: one line for all runs)")
    logx = args.logx
    if kind in ("line",) and not logx and x:
        vals = [c.get(x) for s in sweeps for c in s.done_configs()]
        nums = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0]
        if len(nums) == len(vals) and nums and max(nums) / min(nums) >= 100:
            logx = True
            said.append(f"--logx ({x} spans {min(nums):g} to {max(nums):g})")
    spec = PlotSpec(kind=kind, y=tuple(y), x=x, hue=tuple(hue), style=args.style, col=args.col, logx=logx,
                    logy=args.logy, panel_width=6.0 if kind != "table" else 5.2)
    return spec, said


def default_name(spec: PlotSpec) -> str:
    """The file stem: every setting that shapes the plot (two different plots never share it)."""
    parts = [spec.kind, "_".join(spec.y)]
    if spec.x and spec.kind != "curves":
        parts += ["vs", spec.x]
    if spec.hue:
        parts += ["by", "_".join(spec.hue)]
    if spec.style:
        parts += ["style", spec.style]
    if spec.col:
        parts += ["col", spec.col]
    parts += [axis for axis, on in (("logx", spec.logx), ("logy", spec.logy)) if on]
    return "-".join(p.replace(".", "_") for p in parts)


def check_name(name: str) -> str:
    """``--name``: a plain file stem (it never leaves the output folder)."""
    if not NAME_RE.fullmatch(name):
        raise UsageError(f"--name: got {name!r}; allowed: {NAME_ALLOWED}")
    return name


def output_folder(out: str | None, sweep_folder: Path) -> Path:
    """The folder the files go to, checked before anything is drawn: ``<sweep>/plots`` (which
    must lie inside the sweep folder: a link out of it is refused), or ``--out``, whose parent
    must exist; created if needed, then tried with a temporary file. :class:`UsageError` (one
    line) when it cannot be written."""
    if out is None:
        folder = sweep_folder / "plots"
        try:
            inside(sweep_folder, folder)
        except PathEscape as e:
            raise UsageError(f"{e} (a link out of the sweep folder); allowed: a plots folder inside it, or --out DIR")
        flag = f"{folder} (the default output; choose another with --out DIR)"
    else:
        folder, flag = Path(out), f"--out {out}"
        if not folder.parent.is_dir():
            raise UsageError(f"{flag}: the folder {folder.parent} does not exist; allowed: a folder whose parent exists")
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag}: is a file; allowed: a folder")
    try:
        folder.mkdir(exist_ok=True, parents=out is None)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UsageError(f"{flag}: cannot be written ({describe_os_error(e)})") from None
    return folder


def _short_scale(s) -> str:
    """``mnist, small_conv, 8 epochs`` for a figure title (the caption has the details)."""
    from harness.figures.base import config_values

    data, arch, epochs = (config_values([s], [k]).split(" = ", 1)[1] for k in ("data.name", "model.arch", "train.epochs"))
    return f"{data}, {arch}, {epochs} epochs"


def render(spec: PlotSpec, sweeps, out: Path, name: str) -> list[Path]:
    """Draw ``spec`` and write its files into ``out``; returns them."""
    from harness.figures.render import _save_figure, _write_table

    item = Item(name, "table" if spec.kind == "table" else "figure", name, "", tuple(), lambda d: None, tuple())
    data = ItemData(item, sweeps, {s.name: s.name for s in sweeps})
    result = draw_spec(spec, data)
    n_done = sum(len(s.done_runs) for s in sweeps)
    n_all = sum(len(s.runs) for s in sweeps)
    lines = [f"# {name}", ""]
    lines += [f"- Sweep `{s.folder}` (read from {s.source}): {len(s.done_runs)} of {len(s.runs)} runs done "
              f"(only done runs shown); scale: {scale_text([s])}." for s in sweeps]
    lines += [f"- {n}" for n in result.notes]
    problems = [p for s in sweeps for p in s.problems]
    if problems:
        lines.append("- Problems while reading the results: " + " | ".join(problems))
    caption = "\n".join(lines) + "\n"
    title = (f"{', '.join(s.name for s in sweeps)} ({'; '.join(dict.fromkeys(_short_scale(s) for s in sweeps))}): "
             f"{', '.join(spec.y)} — N = {n_done} of {n_all} runs done")
    if isinstance(result, TableOut):
        return _write_table(result, out / name, caption, title)
    files = _save_figure(result.figure, out / name, title)
    files.append(out / f"{name}.caption.md")
    from harness.atomic import write_text

    write_text(files[-1], caption)
    return files


def make(args: argparse.Namespace) -> tuple[list[str], list[Path]]:
    """Draw what ``args`` (this module's command line) asks for: (one line per default chosen,
    the files written). Raises :class:`UsageError` (exit 2), :class:`ItemDataError` (exit 1)
    and ``OSError`` (while writing)."""
    name = check_name(args.name) if args.name is not None else None
    sweeps = _load(args.sweeps)
    spec, said = choose(args, sweeps)
    out = output_folder(args.out, sweeps[0].folder)
    return said, render(spec, sweeps, out, name or default_name(spec))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        said, files = make(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except ItemDataError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except OSError as e:  # e.g. <name>.png is a folder, or the disk filled up while writing
        print(f"error: {describe_os_error(e)}", file=sys.stderr)
        return 2
    for line in said:
        print(f"chose {line}")
    print("wrote " + ", ".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())
