"""The sequential seed driver of ``python -m harness.reproduce --sequential`` (issue 17).

The rule itself is a pure function, :func:`harness.reproduce.stats.sequential_decision`; this
module applies it to the claims and asks the sweep engine for the seeds it wants:

1. every claim (and diagnosis and beyond-the-paper row) is evaluated on the done runs; a claim
   already decided (holds, does not hold, untestable on this grid) wants no seeds;
2. every comparison of the others that is not a guard and whose rule says CONTINUE names the settings on its
   two sides (through the run ids behind its values) and the number of seeds it wants next;
3. for each study with such settings a sweep file is derived, ``results/<study>/sequential.yaml``:
   the study's own file with its runs written out as ``cases`` (every run already in the
   study folder's manifest, so the manifest keeps them) plus the new seeds of the wanted
   settings, each seed one above the largest of that setting so far. A run's id is the hash of
   its config, so the runs already done keep their ids and are not trained again;
4. ``python -m harness.sweep`` runs those files, the studies at once sharing the workers
   (:mod:`harness.reproduce.concurrent`); the loop goes back to 1 until no comparison
   wants more seeds (each comparison stops when decided or at the cap, :data:`stats.LOOKS`).
"""

from __future__ import annotations

from pathlib import Path

import yaml

from harness.atomic import write_text
from harness.yaml_io import load_file
from harness.reproduce.stats import CONTINUE, FAILS, HOLDS, LOOKS, UNTESTABLE, Comparison, verdict
from harness.run_folder import MANIFEST, read_json_file

DERIVED = "sequential.yaml"  # the derived sweep file, in the study's results folder


def _manifest_runs(results: Path, study: str) -> dict[str, dict]:
    """run id -> varied values (seed included) from the study folder's manifest."""
    manifest = read_json_file(results / study / MANIFEST)
    runs = manifest.get("runs", []) if isinstance(manifest, dict) else []
    return {r["id"]: dict(r.get("varied", {})) for r in runs if isinstance(r, dict) and "id" in r}


def _setting(varied: dict) -> tuple:
    """A setting: the varied values of a run without its seed (hashable)."""
    return tuple(sorted((k, repr(v)) for k, v in varied.items() if k != "seed"))


def most_seeds(results: Path, study: str) -> int:
    """The most seeds any setting of ``study`` has under ``results`` (the cap reached, or not)."""
    counts: dict[tuple, int] = {}
    for varied in _manifest_runs(results, study).values():
        counts[_setting(varied)] = counts.get(_setting(varied), 0) + 1
    return max(counts.values(), default=0)


def wanted_seeds(claims, data, results: Path, looks: tuple[int, ...] = LOOKS,
                 studies: list[str] | None = None) -> dict[str, dict[tuple, int]]:
    """study -> {setting: seeds wanted} for every comparison the sequential rule continues
    (only studies named in ``studies`` when given: the benchmark, a search, is never extended)."""
    want: dict[str, dict[tuple, int]] = {}
    manifests: dict[str, dict[str, dict]] = {}
    for claim in claims:
        comparisons = claim.evaluate(data).comparisons
        if verdict(comparisons) in (HOLDS, FAILS, UNTESTABLE):  # decided: no comparison of it needs seeds
            continue
        for c in comparisons:
            if not isinstance(c, Comparison) or c.guard:
                continue
            state = c.sequential(looks)
            if state.state != CONTINUE:
                continue
            for side in (c.a, c.b):
                study, ids = getattr(side, "study", None), getattr(side, "ids", [])
                if not study or not ids or (studies is not None and study not in studies):
                    continue
                runs = manifests.setdefault(study, _manifest_runs(results, study))
                for rid in ids:
                    if rid in runs:
                        key = _setting(runs[rid])
                        want.setdefault(study, {})[key] = max(want.get(study, {}).get(key, 0), state.next_n)
    return want


def derived_sweep(study: str, results: Path, settings: dict[tuple, int], sweeps: Path = Path("sweeps")) -> Path | None:
    """Write ``results/<study>/sequential.yaml`` (module docstring, step 3); None when no seed is new."""
    doc = load_file(sweeps / f"{study}.yaml")
    runs = _manifest_runs(results, study)
    cases = [dict(v) for v in runs.values()]
    added = 0
    for key, n in settings.items():
        existing = sorted(int(v["seed"]) for v in runs.values() if _setting(v) == key)
        template = next(v for v in runs.values() if _setting(v) == key)
        seed = max(existing) + 1
        for _ in range(n - len(existing)):
            cases.append({**template, "seed": seed})
            seed += 1
            added += 1
    if not added:
        return None
    doc.pop("grid", None)
    doc["cases"] = cases
    path = results / study / DERIVED
    write_text(path, "# Derived by harness.reproduce.sequential (the sequential seed rule): the study's runs "
                     "so far plus the seeds its undecided comparisons want. Do not edit.\n"
               + yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    return path


def add_seeds(claims, data_factory, results: Path, workers: int, looks: tuple[int, ...] = LOOKS,
              budget_s: float | None = None, studies: list[str] | None = None) -> dict[str, int]:
    """Run the loop of the module docstring; returns study -> runs trained for extra seeds.

    ``data_factory()`` gives a fresh :class:`harness.reproduce.claims.Data` (the runs change).
    ``budget_s``: a study's batch whose projected time (:mod:`harness.reproduce.projection`)
    would take the seconds spent past it is not started (its comparisons stay undecided)."""
    from harness.reproduce.concurrent import run_at_once
    from harness.reproduce.projection import project

    trained: dict[str, int] = {}
    stopped: list[str] = []  # studies whose next batch the budget refused (returned as trained["_stopped"])
    spent = 0.0
    for _ in range(len(looks)):
        want = wanted_seeds(claims, data_factory(), results, looks, studies)
        previous = {study: (results / study / DERIVED).read_text() if (results / study / DERIVED).is_file() else None
                    for study in want}  # restored when the budget refuses the batch (the file lists trained runs only)
        files = {study: derived_sweep(study, results, settings) for study, settings in sorted(want.items())}
        files = {s: f for s, f in files.items() if f is not None}
        if not files:
            break
        before: dict[str, int] = {}
        for study, file in list(files.items()):
            before[study] = len(_manifest_runs(results, study))
            cost = project([file], workers, done=set(_manifest_runs(results, study)))["seconds"]
            if budget_s is not None and spent + cost > budget_s:
                print(f"reproduce --sequential: {study}: next batch ({cost / 60:.1f} min) exceeds the time budget; "
                      "its comparisons stay undecided", flush=True)
                stopped.append(study)
                if previous[study] is None:
                    file.unlink()
                else:
                    write_text(file, previous[study])
                files.pop(study)
                continue
            spent += cost
            print(f"reproduce --sequential: {study}: adding seeds to {len(want[study])} undecided settings", flush=True)
        # the look's batches at once, sharing the workers (harness.reproduce.concurrent): no idle tails
        for study, *_ in run_at_once(list(files), files.get, results, workers):
            trained[study] = trained.get(study, 0) + len(_manifest_runs(results, study)) - before[study]
        if not files:
            break
    if stopped:
        trained["_stopped"] = sorted(set(stopped))
    return trained
