"""Do the verdicts survive other seeds? Rerun studies with other base seeds (issue 17).

    python -m harness.reproduce.robustness --only lambda queue [--seeds 10 11 12] [--workers 2]

Each study's own sweep file is run with its ``grid.seed`` list replaced by ``--seeds`` (every
other setting as committed), into ``results/robustness/<study>/`` (a results root of its own, so
that the study's runs and these never mix). Every claim whose studies were all rerun is then
decided three ways and written to ``results/robustness/verdicts.json``:

* ``reproduce``: the committed verdict (seeds 0, 1, 2 and any the sequential rule added);
* ``first_look``: the committed runs restricted to seeds 0, 1, 2 (the first look);
* ``other_seeds``: the rerun with ``--seeds`` (also a first look, three seeds).

``first_look`` against ``other_seeds`` is the like-for-like check (same number of seeds, disjoint
seeds); a claim the sequential rule decided with more seeds may be *inconclusive* at both first
looks without contradicting its verdict. The command exits 1 when a first-look verdict flips
between *holds* and *does not hold*, or when the other seeds' verdict is the opposite of the
report's (a decided claim reversed by other seeds).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from harness.atomic import write_json, write_text
from harness.errors import CommandLine
from harness.reproduce.claims import BELOW_BEST, CLAIMS, DIAGNOSIS, Data
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


def compare(results: Path, root: Path, studies: list[str], seeds: list[int]) -> dict:
    """The three verdicts of every claim whose studies are all in ``studies`` (module docstring)."""
    full, first, other = Data(results), SeedData(results, FIRST_LOOK), Data(root)
    rows = {}
    for claim in CLAIMS + DIAGNOSIS + BELOW_BEST:
        if claim.measurement or not set(claim.studies) <= set(studies):
            continue
        rows[claim.id] = {k: verdict(claim.evaluate(d).comparisons)
                          for k, d in (("reproduce", full), ("first_look", first), ("other_seeds", other))}
    def opposite(a: str, b: str) -> list[str]:  # claims whose verdicts a and b are holds against does not hold
        return [cid for cid, v in rows.items() if {v[a], v[b]} == {HOLDS, FAILS}]

    flips, against = opposite("first_look", "other_seeds"), opposite("reproduce", "other_seeds")
    return {"studies": studies, "seeds": seeds, "first_look_seeds": list(FIRST_LOOK), "claims": rows,
            "same_first_look": sum(v["first_look"] == v["other_seeds"] for v in rows.values()),
            "same_as_reproduce": sum(v["reproduce"] == v["other_seeds"] for v in rows.values()),
            "flips": flips, "flips_against_reproduce": against}


def main(argv: list[str] | None = None) -> int:
    p = CommandLine(prog="python -m harness.reproduce.robustness",
                    description="Rerun studies with other base seeds and compare the verdicts.")
    p.add_argument("--only", nargs="+", metavar="STUDY", required=True, help="the studies to rerun")
    p.add_argument("--seeds", nargs="+", type=int, default=[10, 11, 12], help="the other seeds (default 10 11 12)")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--results", default="results", help="the committed results root (default: results)")
    args = p.parse_args(argv)
    from harness.reproduce import STUDIES

    unknown = [s for s in args.only if s not in STUDIES]
    if unknown:
        print(f"--only: unknown study {unknown[0]!r}; allowed: {', '.join(STUDIES)}", file=sys.stderr)
        return 2
    results = Path(args.results)
    root = results / FOLDER
    for study in args.only:
        file = derived_file(study, args.seeds, root)
        subprocess.call([sys.executable, "-m", "harness.sweep", str(file), "--workers", str(args.workers),
                         "--results", str(root)])
    old = read_json_file(root / "verdicts.json")  # studies rerun before with the same seeds stay in the record
    kept = [s for s in (old.get("studies", []) if isinstance(old, dict) and old.get("seeds") == args.seeds else [])
            if s not in args.only]
    record = compare(results, root, kept + list(args.only), list(args.seeds))
    write_json(root / "verdicts.json", record)
    for cid, v in record["claims"].items():
        print(f"{cid}: reproduce {v['reproduce']}; seeds {FIRST_LOOK}: {v['first_look']}; "
              f"seeds {tuple(args.seeds)}: {v['other_seeds']}")
    print(f"robustness: {record['same_first_look']} of {len(record['claims'])} first-look verdicts the same; "
          f"flips between holds and does not hold: {record['flips'] or 'none'}")
    print(f"robustness: {record['same_as_reproduce']} of {len(record['claims'])} verdicts with seeds "
          f"{tuple(args.seeds)} equal the report's; contradicting it: {record['flips_against_reproduce'] or 'none'}")
    return 1 if record["flips"] or record["flips_against_reproduce"] else 0


if __name__ == "__main__":
    sys.exit(main())
