"""Search sections of sweep files (harness/sweep/search.py): reproducible draws, validation
(one line, exit 2, nothing written), the two stages end to end, resume without redrawing."""

from __future__ import annotations

import copy
import json
import math
import random

import pytest
import yaml

from harness.seeding import derive_seed
from harness.sweep import SweepError, load_sweep
from harness.sweep.__main__ import main
from harness.sweep.space import Distribution, parse_distribution


def tiny_base(tiny_tree, val_size=40) -> dict:
    base = copy.deepcopy(tiny_tree)
    base["method"] = {"weight": 1.0}
    base["data"]["val_size"] = val_size
    base["train"].update(epochs=1, num_threads=1)
    base["eval"] = {"metrics": ["recon"], "every": 0}
    return base


def search_doc(tiny_tree, **search) -> dict:
    spec = {"budget": 3, "seed": 0, "select": {"metric": "test_recon", "mode": "min"}, "seeds": [0, 1, 2],
            "space": {"moca": {"method.weight": {"log_uniform": [0.1, 10.0]},
                               "method.tau": {"uniform": [0.05, 0.5]}},
                      "mmd": {"method.weight": {"log_uniform": [0.1, 10.0]},
                              "method.kernel": {"choice": ["imq", "rbf"]}}}}
    spec.update(search)
    return {"name": "srch", "base": tiny_base(tiny_tree), "per_method": {"moca": {"method.queue_size": 50}},
            "search": spec}


def write(tmp_path, doc, name="s.yaml"):
    (tmp_path / "pyproject.toml").touch()
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def trials(sweep) -> list[tuple]:
    return [(r.id, r.config.method.name, r.config.method.weight) for r in sweep.runs if r.config.eval.split == "val"]


# ---------------------------------------------------------------------------- draws


def test_draws_are_pinned_values_from_python_random_and_rounded(tmp_path, tiny_tree):
    sweep = load_sweep(write(tmp_path, search_doc(tiny_tree)))
    moca = [r for r in sweep.runs if r.config.method.name == "moca" and r.config.eval.split == "val"]
    # by hand: trial 0 of moca draws u1, u2 from random.Random(derive_seed(0, "search", "moca", 0))
    rng = random.Random(derive_seed(0, "search", "moca", 0))
    u1, u2 = rng.random(), rng.random()
    weight = float(f"{math.exp(math.log(0.1) + u1 * (math.log(10.0) - math.log(0.1))):.4g}")
    tau = float(f"{0.05 + u2 * 0.45:.4g}")
    assert (moca[0].config.method.weight, moca[0].config.method.params.tau) == (weight, tau)
    # pinned: the same file gives these values on any machine and Python version
    assert (weight, tau) == (0.1494, 0.3697)
    assert all(r.config.seed == 0 and r.config.data.val_size == 40 for r in moca)
    assert [r.name for r in moca][0] == "method=moca,weight=0.1494,tau=0.3697,split=val,seed=0"


def test_same_file_same_trials_and_a_larger_budget_keeps_the_first(tmp_path, tiny_tree):
    path = write(tmp_path, search_doc(tiny_tree))
    first, again = load_sweep(path), load_sweep(path)
    assert trials(first) == trials(again) and len(trials(first)) == 6
    bigger = load_sweep(write(tmp_path, search_doc(tiny_tree, budget=5), "big.yaml"))
    by_method = lambda ts, m: [t for t in ts if t[1] == m]  # noqa: E731
    for m in ("moca", "mmd"):
        assert by_method(trials(bigger), m)[:3] == by_method(trials(first), m)
    # a method's trials do not depend on the other methods
    doc = search_doc(tiny_tree)
    del doc["search"]["space"]["moca"]
    alone = load_sweep(write(tmp_path, doc, "alone.yaml"))
    assert trials(alone) == by_method(trials(first), "mmd")
    other_seed = load_sweep(write(tmp_path, search_doc(tiny_tree, seed=1), "seed1.yaml"))
    assert trials(other_seed) != trials(first)


def test_each_distribution_stays_in_range_with_the_right_spread():
    rng = random.Random(5)
    log = [Distribution("log_uniform", (1.0, 10000.0)).draw(rng) for _ in range(4000)]
    assert min(log) >= 1.0 and max(log) <= 10000.0
    assert abs(sum(math.log10(x) for x in log) / len(log) - 2.0) < 0.1  # uniform in log10: mean 2
    ints = [Distribution("int", (2, 5)).draw(rng) for _ in range(4000)]
    assert set(ints) == {2, 3, 4, 5} and all(isinstance(x, int) for x in ints)
    assert all(abs(ints.count(k) / 4000 - 0.25) < 0.04 for k in (2, 3, 4, 5))
    unif = [Distribution("uniform", (-1.0, 1.0)).draw(rng) for _ in range(4000)]
    assert -1 <= min(unif) and max(unif) <= 1 and abs(sum(unif) / 4000) < 0.05
    picks = [Distribution("choice", ("a", "b", "c")).draw(rng) for _ in range(3000)]
    assert all(abs(picks.count(c) / 3000 - 1 / 3) < 0.04 for c in "abc")
    assert Distribution("log_uniform", (3.0, 3.0)).draw(rng) == 3.0


# ---------------------------------------------------------------------------- validation


BAD = [
    ({"space": {"moca": {"method.tau": {"loguniform": [0.1, 1]}}}},
     "search.space.moca method.tau: unknown distribution 'loguniform' (did you mean 'log_uniform'?)"),
    ({"space": {"moca": {"method.tau": {"uniform": [0.5, 0.1]}}}},
     "search.space.moca method.tau: uniform: low 0.5 > high 0.1; allowed: low <= high"),
    ({"budget": -2}, "search budget: got -2; allowed: an integer >= 1"),
    ({"budget": 0}, "search budget: got 0; allowed: an integer >= 1"),
    ({"space": {"mmd": {"method.tau": {"uniform": [0.1, 0.5]}}}},
     "search.space.mmd method.tau: not a key of method mmd"),
    ({"space": {"moca": {"method.tau": {"uniform": [-1.0, 0.5]}}}},
     "search.space.moca method.tau: got -1.0; allowed: a number > 0"),
    ({"space": {"moca": {"method.weight": {"log_uniform": [0.0, 1.0]}}}},
     "search.space.moca method.weight: log_uniform: low 0.0; allowed: 0 < low <= high"),
    ({"space": {"moca": {"method.queue_size": {"int": [1.5, 10]}}}},
     "search.space.moca method.queue_size: int: got [1.5, 10]; allowed: [low, high], two integers"),
    ({"space": {"mocha": {"method.weight": {"uniform": [1, 2]}}}},
     "search.space mocha: unknown method (did you mean 'moca'?)"),
    ({"seeds": [0, 1]}, "search seeds: got [0, 1]; allowed: a list of at least 3 distinct integers >= 0"),
    ({"select": {"metric": "fid", "mode": "lowest"}}, "search select.mode: got 'lowest'; allowed: min, max"),
    ({"bugdet": 3}, "search bugdet: unknown key (did you mean 'budget'?)"),
    ({"space": {"moca": {"seed": {"int": [0, 9]}}}}, "search.space.moca seed: set by the search itself"),
    ({"space": {"mmd": {"method.kernel": {"choice": ["imq"]}}}},
     "search.space.mmd: trials 0 and 1 of mmd drew the same values"),
]


@pytest.mark.parametrize("change,expected", BAD, ids=[b[1].split(":")[0] + str(i) for i, b in enumerate(BAD)])
def test_bad_search_sections_exit_2_with_one_line_and_write_nothing(tmp_path, tiny_tree, capsys, change, expected):
    doc = search_doc(tiny_tree)
    doc["search"].update(change)
    path, results = write(tmp_path, doc), tmp_path / "results"
    assert main([str(path), "--results", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{path}: {expected}"), err
    assert not results.exists()


def test_search_needs_a_validation_split_and_no_grid(tmp_path, tiny_tree):
    doc = search_doc(tiny_tree)
    doc["base"]["data"]["val_size"] = 0
    with pytest.raises(SweepError, match="base data.val_size: got 0; allowed: an integer >= 1"):
        load_sweep(write(tmp_path, doc))
    doc = search_doc(tiny_tree)
    doc["grid"] = {"seed": [0, 1]}
    with pytest.raises(SweepError, match="grid: given together with search"):
        load_sweep(write(tmp_path, doc))
    with pytest.raises(SweepError, match=r"--set seed: also set by search"):
        load_sweep(write(tmp_path, search_doc(tiny_tree)), ["seed=3"])


def test_parse_distribution_rejects_non_mappings():
    from harness.sweep.space import SearchSpecError

    with pytest.raises(SearchSpecError, match="allowed: a mapping with one of"):
        parse_distribution("search.space.moca", "method.tau", [0.1, 0.2])


# ---------------------------------------------------------------------------- end to end


def metric_of(folder, rid, key="test_recon") -> float:
    rows = [json.loads(x) for x in (folder / rid / "metrics.jsonl").read_text().splitlines()]
    return [r[key] for r in rows if key in r][-1]


def test_two_stages_select_on_validation_and_rerun_best_on_test(tmp_path, tiny_tree, capsys):
    doc = search_doc(tiny_tree, budget=2, fixed={"method.weight": 1.0})
    path, results = write(tmp_path, doc), tmp_path / "results"
    assert main([str(path), "--results", str(results), "--executor", "debug"]) == 0
    folder = results / "srch"
    record = json.loads((folder / "search.json").read_text())
    assert record["ready"] and record["metric"] == "test_recon"
    manifest = json.loads((folder / "sweep.json").read_text())
    assert len(manifest["runs"]) == 2 * 2 + 2 * 3 + 2 * 3  # trials, fixed, tuned
    for method in ("moca", "mmd"):
        trial_ids = [t["id"] for t in record["trials"][method]]
        values = [metric_of(folder, rid) for rid in trial_ids]
        best = trial_ids[values.index(min(values))]
        assert record["chosen"][method]["id"] == best
        chosen_cfg = json.loads((folder / best / "config.json").read_text())
        assert chosen_cfg["eval"]["split"] == "val"
        tuned = [rid for rid, st in record["runs"].items() if {"stage": "tuned", "method": method} in
                 [{k: s[k] for k in ("stage", "method")} for s in st]]
        assert len(tuned) == 3
        cfgs = [json.loads((folder / rid / "config.json").read_text()) for rid in tuned]
        assert sorted(c["seed"] for c in cfgs) == [0, 1, 2]
        for c in cfgs:
            assert c["eval"]["split"] == "test" and c["data"]["val_size"] == 40
            assert c["method"] | {} == {**chosen_cfg["method"]}  # the chosen trial's settings
    out = capsys.readouterr().out
    assert "selected: moca: trial" in out and "srch: 16 runs: 16 done" in out
    # --status lists the same runs and the selection, and starts nothing
    assert main([str(path), "--results", str(results), "--status"]) == 0
    assert "srch: 16 runs: 16 done" in capsys.readouterr().out


def test_interrupted_search_resumes_without_redrawing_or_redoing_trials(tmp_path, tiny_tree, capsys, monkeypatch):
    import harness.sweep.__main__ as cli

    doc = search_doc(tiny_tree, budget=2)
    path, results = write(tmp_path, doc), tmp_path / "results"
    real = cli.execute

    def interrupted(args, executor, launches, follow):
        real(args, executor, launches[:3], follow)  # three runs finish, then Ctrl-C
        return 130

    monkeypatch.setattr(cli, "execute", interrupted)
    assert main([str(path), "--results", str(results), "--executor", "debug"]) == 130
    folder = results / "srch"
    first = json.loads((folder / "sweep.json").read_text())["runs"]
    assert len(first) == 4  # the trials only: the tuned runs wait for them
    done_before = {r["id"]: (folder / r["id"] / "status.json").read_text() for r in first
                   if (folder / r["id"] / "status.json").exists()}
    assert len(done_before) == 3
    assert main([str(path), "--results", str(results), "--status"]) == 0
    assert "tuned runs: not yet listed; they follow once the 1 trials" in capsys.readouterr().out

    monkeypatch.setattr(cli, "execute", real)
    assert main([str(path), "--results", str(results), "--executor", "debug"]) == 0
    runs = json.loads((folder / "sweep.json").read_text())["runs"]
    assert [r["id"] for r in runs[:4]] == [r["id"] for r in first]  # the same draws
    assert len(runs) == 4 + 6
    for rid, status in done_before.items():  # finished trials were not run again
        assert (folder / rid / "status.json").read_text() == status


def test_set_search_budget_gives_a_prefix_of_the_trials_and_is_validated(tmp_path, tiny_tree, capsys):
    path = write(tmp_path, search_doc(tiny_tree))
    full, reduced = load_sweep(path), load_sweep(path, ["search.budget=2"])
    by = lambda ts, m: [t for t in ts if t[1] == m]  # noqa: E731
    for m in ("moca", "mmd"):
        assert by(trials(reduced), m) == by(trials(full), m)[:2]
    results = tmp_path / "results"
    assert main([str(path), "--results", str(results), "--set", "search.budget=-1"]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: search budget: got -1; allowed: an integer >= 1")
    plain = copy.deepcopy(search_doc(tiny_tree))
    del plain["search"]
    plain["grid"] = {"seed": [0]}
    assert main([str(write(tmp_path, plain, "plain.yaml")), "--results", str(results),
                 "--set", "search.budget=2"]) == 2
    assert "--set search.budget: the sweep file has no search section" in capsys.readouterr().err
    assert not results.exists()


def test_a_huge_budget_is_refused_in_one_line_without_drawing_trials(tmp_path, tiny_tree, capsys, monkeypatch):
    """Issue 20: a budget far above the large-sweep guard refuses at once (it hung in the dry
    run, drawing every trial first), unless --allow-large."""
    import time

    from harness.sweep import space
    from harness.sweep.spec import MAX_RUNS

    load_sweep(write(tmp_path, search_doc(tiny_tree, budget=1), "warm.yaml"))  # imports, registries
    path, results = write(tmp_path, search_doc(tiny_tree, budget=10**9)), tmp_path / "results"
    start = time.process_time()  # CPU time: the test machine's load does not count
    assert main([str(path), "--results", str(results), "--dry-run"]) == 2
    assert time.process_time() - start < 5
    err = capsys.readouterr().err
    assert err == (f"{path}: {2 * 10**9} runs (1000000000 trials per method); allowed: at most "
                   f"{MAX_RUNS} (pass --allow-large to run a larger sweep)\n")
    assert not results.exists()

    def no_draws(*args, **kwargs):
        raise AssertionError("drew trials before the size check")

    monkeypatch.setattr(space, "points", no_draws)
    ok = write(tmp_path, search_doc(tiny_tree, budget=MAX_RUNS // 2, fixed={"method.weight": 1.0}), "ok.yaml")
    with pytest.raises(SweepError, match=f"{MAX_RUNS + 6} runs"):  # 2 x budget + 2 methods x 3 fixed seeds
        load_sweep(ok, max_runs=MAX_RUNS)


@pytest.mark.parametrize("metric,ok", [("fidd", False), ("test_recon", True), ("recon", True),
                                       ("reg_mmd", True), ("image_swd", False)])
def test_select_metric_is_checked_against_what_the_trials_log(tmp_path, tiny_tree, capsys, metric, ok):
    """Issue 21.3: a misspelled or absent select.metric is one line, exit 2, before any trial
    trains (it trained every trial, then said "no trial has a finite 'fidd'")."""
    doc = search_doc(tiny_tree, select={"metric": metric, "mode": "min"})
    path, results = write(tmp_path, doc), tmp_path / "results"
    code = main([str(path), "--results", str(results), "--dry-run"])
    err = capsys.readouterr().err
    if ok:
        assert code == 0, err
        return
    assert code == 2 and err.count("\n") == 1
    assert err.startswith(f"{path}: search select.metric: got {metric!r}")
    assert "allowed: a metric the trials of moca log (eval.metrics ['recon']): loss, recon, reg, reg_*, test_recon" in err
    assert not results.exists()


def test_every_logged_metric_is_declared(tmp_path, tiny_tree):
    """The declarations select.metric is checked against (TRAINING_METRICS and each
    evaluator's ``logs``) cover what a run really logs (vector-data evaluators; the image
    evaluators' keys are pinned by their own tests)."""
    import fnmatch

    from harness.config import config_from_dict
    from harness.evaluators import logged_metrics
    from harness.run_folder import TRAINING_METRICS, read_metrics
    from harness.train import train_run

    tiny_tree["train"]["epochs"] = 1
    tiny_tree["eval"] = {"metrics": ["recon", "latent"], "every": 1, "num_samples": 64, "projections": 8}
    cfg = config_from_dict(tiny_tree)
    assert train_run(cfg, tmp_path / "run") == "done"
    rows = read_metrics(tmp_path / "run" / "metrics.jsonl").rows
    keys = {k for row in rows for k in row} - {"epoch", "step", "lr", "epoch_time_s", "eval_time_s"}
    patterns = [*TRAINING_METRICS, *logged_metrics(cfg)]
    assert {"test_recon", "latent_swd", "loss"} <= keys
    assert all(any(fnmatch.fnmatchcase(k, p) for p in patterns) for k in keys), (keys, patterns)
