"""Do the verdicts survive other seeds? Rerun studies with other base seeds (issue 17).

    python -m harness.reproduce.robustness --only lambda queue [--seeds 10 11 12] [--sequential] [--workers 2]

Each study's own sweep file is run with its ``grid.seed`` list replaced by ``--seeds`` (every
other setting as committed), into ``results/robustness/<study>/`` (a results root of its own, so
that the study's runs and these never mix). With ``--sequential`` the rule of ``make reproduce
--sequential`` then adds seeds (13, 14, ...) to the comparisons still undecided, in the same
looks up to the same cap (:mod:`harness.reproduce.sequential`). Every claim whose studies were
all rerun is then decided up to four ways and written to ``results/robustness/verdicts.json``:

* ``reproduce``: the committed verdict (seeds 0, 1, 2 and any the sequential rule added);
* ``first_look``: the committed runs restricted to seeds 0, 1, 2 (the first look);
* ``other_seeds``: the rerun restricted to ``--seeds`` (also a first look, three seeds);
* ``other_seeds_sequential`` (with ``--sequential``): the rerun with every seed the rule added.

``first_look`` against ``other_seeds`` is the like-for-like check of a first look (same number
of seeds, disjoint seeds), ``reproduce`` against ``other_seeds_sequential`` that of the whole
procedure. The command exits 1 when a verdict flips between *holds* and *does not hold* in
either pair, or when the other seeds' first look is the opposite of the report's.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import yaml

from harness.atomic import write_json, write_text
from harness.errors import CommandLine
from harness.reproduce.claims import BELOW_BEST, CLAIMS, DIAGNOSIS, Data
from harness.reproduce.sequential import most_seeds
from harness.reproduce.stats import FAILS, HOLDS, verdict
from harness.run_folder import read_json_file
from harness.yaml_io import load_file

FOLDER = "robustness"
FIRST_LOOK = (0, 1, 2)


class SeedData(Data):
    """The done runs of a results root, restricted to some seeds."""

    def __init__(self, results, seeds):
        super().__init__(results)
        self.seeds = set(seeds)

    def _keep(self, df: pd.DataFrame) -> pd.DataFrame:
        return df[df["seed"].isin(self.seeds)] if "seed" in df.columns else df

    def runs(self, name):
        return self._keep(super().runs(name))

    def curves(self, name):
        curves = super().curves(name)
        if curves.empty or "seed" in curves.columns:
            return self._keep(curves)
        ids = set(self.runs(name)["id"]) if not self.runs(name).empty else set()
        return curves[curves["id"].isin(ids)]


def derived_file(study: str, seeds: list[int], root: Path, sweeps: Path = Path("sweeps")) -> Path:
    """``sweeps/<study>.yaml`` with its seed list replaced, written beside the rerun's results."""
    doc = load_file(sweeps / f"{study}.yaml")
    if not isinstance(doc.get("grid"), dict) or "seed" not in doc["grid"]:
        raise ValueError(f"sweeps/{study}.yaml: grid.seed: missing; the rerun replaces that list")
    doc["grid"]["seed"] = list(seeds)
    path = root / f"{study}.yaml"
    write_text(path, f"# Derived by harness.reproduce.robustness: sweeps/{study}.yaml with seeds {seeds}.\n"
               + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


def claims_of(studies: list[str]) -> list:
    """The claims (diagnoses and trends below the best λ included) decided by ``studies`` alone."""
    return [c for c in CLAIMS + DIAGNOSIS + BELOW_BEST if not c.measurement and set(c.studies) <= set(studies)]


def compare(results: Path, root: Path, studies: list[str], seeds: list[int], sequential: bool = False) -> dict:
    """The verdicts of every claim whose studies are all in ``studies`` (module docstring)."""
    sources = [("reproduce", Data(results)), ("first_look", SeedData(results, FIRST_LOOK)),
               ("other_seeds", SeedData(root, seeds))] + ([("other_seeds_sequential", Data(root))] if sequential else [])
    rows = {claim.id: {k: verdict(claim.evaluate(d).comparisons) for k, d in sources} for claim in claims_of(studies)}

    def opposite(a: str, b: str) -> list[str]:  # claims whose verdicts a and b are holds against does not hold
        return [cid for cid, v in rows.items() if {v[a], v[b]} == {HOLDS, FAILS}]

    record = {"studies": studies, "seeds": seeds, "first_look_seeds": list(FIRST_LOOK), "claims": rows,
              "same_first_look": sum(v["first_look"] == v["other_seeds"] for v in rows.values()),
              "same_as_reproduce": sum(v["reproduce"] == v["other_seeds"] for v in rows.values()),
              "flips": opposite("first_look", "other_seeds"),
              "flips_against_reproduce": opposite("reproduce", "other_seeds"), "sequential": sequential}
    if sequential:
        record["same_sequential"] = sum(v["reproduce"] == v["other_seeds_sequential"] for v in rows.values())
        record["flips_sequential"] = opposite("reproduce", "other_seeds_sequential")
        record["seeds_per_study"] = {s: most_seeds(Path(root), s) for s in studies}
    return record


def main(argv: list[str] | None = None) -> int:
    p = CommandLine(prog="python -m harness.reproduce.robustness",
                    description="Rerun studies with other base seeds and compare the verdicts.")
    p.add_argument("--only", nargs="+", metavar="STUDY", required=True, help="the studies to rerun")
    p.add_argument("--seeds", nargs="+", type=int, default=[10, 11, 12], help="the other seeds (default 10 11 12)")
    p.add_argument("--sequential", action="store_true",
                   help="then add seeds where a comparison is undecided, by the rule and cap of make reproduce")
    p.add_argument("--budget-min", type=float, default=None,
                   help="--sequential: no batch of extra seeds starts that would take the projected time past this "
                        "many minutes from now (default: no limit); the comparisons it leaves stay undecided")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--results", default="results", help="the committed results root (default: results)")
    args = p.parse_args(argv)
    from harness.reproduce import STUDIES
    from harness.reproduce.__main__ import study_file
    from harness.reproduce.concurrent import run_at_once

    unknown = [s for s in args.only if s not in STUDIES]
    if unknown:
        print(f"--only: unknown study {unknown[0]!r}; allowed: {', '.join(STUDIES)}", file=sys.stderr)
        return 2
    results = Path(args.results)
    root = results / FOLDER
    files = {study: study_file(study, root, own=derived_file(study, args.seeds, root))  # its sequential seeds kept
             for study in args.only}
    for _ in run_at_once(list(args.only), files.get, root, args.workers):
        pass
    old = read_json_file(root / "verdicts.json")  # studies rerun before the same way stay in the record
    same_way = isinstance(old, dict) and old.get("seeds") == args.seeds and bool(old.get("sequential")) == args.sequential
    kept = [s for s in (old.get("studies", []) if same_way else []) if s not in args.only]
    studies = kept + list(args.only)
    if args.sequential:
        from harness.reproduce.sequential import add_seeds

        budget_s = None if args.budget_min is None else args.budget_min * 60
        extra = add_seeds(claims_of(studies), lambda: Data(root), root, args.workers, budget_s=budget_s,
                          studies=list(args.only))
        stopped = extra.pop("_stopped", [])
        print(f"robustness --sequential: {sum(extra.values())} runs trained for extra seeds"
              + (f"; the budget stopped {', '.join(stopped)}" if stopped else ""), flush=True)
    record = compare(results, root, studies, list(args.seeds), args.sequential)
    if args.sequential:
        previous = old.get("stopped_by_budget", []) if same_way else []
        record["stopped_by_budget"] = sorted(set(stopped) | (set(previous) - set(args.only)))
    write_json(root / "verdicts.json", record)
    for cid, v in record["claims"].items():
        print(f"{cid}: reproduce {v['reproduce']}; seeds {FIRST_LOOK}: {v['first_look']}; "
              f"seeds {tuple(args.seeds)}: {v['other_seeds']}"
              + (f"; seeds {args.seeds[0]} and on: {v['other_seeds_sequential']}" if args.sequential else ""))
    print(f"robustness: {record['same_first_look']} of {len(record['claims'])} first-look verdicts the same; "
          f"flips between holds and does not hold: {record['flips'] or 'none'}")
    print(f"robustness: {record['same_as_reproduce']} of {len(record['claims'])} verdicts with seeds "
          f"{tuple(args.seeds)} equal the report's; contradicting it: {record['flips_against_reproduce'] or 'none'}")
    if args.sequential:
        print(f"robustness: with the sequential rule on both, {record['same_sequential']} of {len(record['claims'])} "
              f"verdicts the same; contradicting: {record['flips_sequential'] or 'none'}")
    return 1 if record["flips"] or record["flips_against_reproduce"] or record.get("flips_sequential") else 0


if __name__ == "__main__":
    sys.exit(main())
