"""Command line of the figure registry (docs/figures.md).

    python -m harness.figures [--results DIR] [--only ID ...] [--list]

Prints one block per item: its outcome (rendered / partial / missing / error), the files it
wrote, and for anything missing the exact ``python -m harness.sweep sweeps/<name>.yaml``
command that produces it. Exit status: 0 when every item that has results was drawn (missing
items do not fail the command), 1 when some item with results could not be drawn (the
reason, with a traceback for a crash, is printed), 2 for a bad command line.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from harness.errors import CommandLine
from harness.figures.registry import IDS, ITEMS
from harness.figures.render import ERROR, MISSING, Outcome, render_item
from harness.registry import suggest


def build_parser() -> argparse.ArgumentParser:
    p = CommandLine(prog="python -m harness.figures",
                                description="Regenerate the paper's figures and tables from results/.")
    p.add_argument("--results", default="results", help="results root (default: results)")
    p.add_argument("--only", nargs="+", metavar="ID", default=None,
                   help=f"items to render (default: all): {', '.join(IDS)}")
    p.add_argument("--list", action="store_true", help="print the registry (items and their sweeps) and exit")
    return p


def print_registry(out=None) -> None:
    out = out or sys.stdout
    for item in ITEMS.values():
        sweeps = ", ".join(f"{ref.file} ({ref.intended}{'' if Path(ref.file).is_file() else ', not written yet'})"
                           for ref in item.sweeps)
        print(f"{item.id:<11} {item.kind:<6} {item.title}\n{'':<19}<- {sweeps}", file=out)


def report(o: Outcome, out=None) -> None:
    """One block per item: id, outcome, files written; notes and commands indented below."""
    out = out or sys.stdout
    if o.files:
        print(f"{o.item.id:<11} {o.state:<8} {o.scale}: {', '.join(str(f) for f in o.files)}", file=out)
    else:
        print(f"{o.item.id:<11} {o.state}", file=out)
    for note in o.notes:
        first, *rest = note.rstrip().splitlines() or [""]
        print(f"{'':<13}- {first}", file=out)
        for line in rest:
            print(f"{'':<15}{line}", file=out)
    for ref in o.missing:
        print(f"{'':<13}run: {ref.command}", file=out)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.list:
        print_registry()
        return 0
    ids = args.only or IDS
    unknown = [i for i in ids if i not in ITEMS]
    if unknown:
        print(f"--only: unknown item {unknown[0]!r}{suggest(unknown[0], IDS)}; allowed: {', '.join(IDS)}",
              file=sys.stderr)
        return 2
    outcomes = []
    for item_id in dict.fromkeys(ids):
        outcome = render_item(ITEMS[item_id], args.results)
        report(outcome)
        outcomes.append(outcome)
    counts = {}
    for o in outcomes:
        counts[o.state] = counts.get(o.state, 0) + 1
    print(f"{len(outcomes)} items: " + ", ".join(f"{n} {s}" for s, n in counts.items()))
    commands = {ref.command: Path(ref.file).is_file() for o in outcomes if o.state == MISSING for ref in o.missing}
    if commands:
        print("to produce the missing items:")
        for command, written in commands.items():
            print(f"  {command}" + ("" if written else "   # sweep file not written yet"))
    errors = [o.item.id for o in outcomes if o.state == ERROR]
    if errors:
        print(f"error: could not draw {', '.join(errors)} (see above)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
