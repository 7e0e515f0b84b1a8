"""The figure/table registry (harness.figures) on fabricated sweep results.

Every result below is TEST DATA written by this file into tmp_path: run folders with
config.json / status.json / metrics.jsonl (and the artifacts the evaluators write), whose
metric values are simple functions of the run's position in the grid and its seed, so that
the expected means and standard deviations can be computed by hand.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from pathlib import Path

import matplotlib.image as mpimg
from matplotlib.colors import to_rgb
import numpy as np
import pandas as pd
import pytest
import yaml

from harness.collect import write_collection
from harness.figures import plots, tables
from harness.figures.__main__ import main
from harness.figures.base import CPU_SCALE, PAPER_SCALE, ItemData, derive_scale, extra_keys
from harness.figures.registry import ITEMS
from harness.figures.render import ERROR, MISSING, PARTIAL, RENDERED, render_item
from harness.figures.results import load_sweep_results
from harness.figures.tables import latex_table, markdown_table

ROOT = Path(__file__).resolve().parents[1]
# the paper's figures and tables (docs/paper.md "Experiments"): the registry must cover them; items
# beyond the paper need no mention here (adding a figure = a registry entry + its two sweep files)
PAPER_IDS = {"fig2_left", "fig2_right", "fig3", "fig4", "fig7", "fig8", "fig9", "fig10",
             "table1", "table2", "table3", "table4", "table5"}

# A CPU-sized config; the sweeps below set what they vary on top of it.
BASE = {
    "data": {"name": "cifar10", "root": "data", "train_limit": 500, "test_limit": 200, "image_size": None,
             "num_points": 1000, "input_dim": 100},
    "model": {"arch": "small_conv", "latent_dim": 16, "prior": "sphere", "hidden": [128, 128, 128],
              "decoder_hidden": [128, 128], "width": 16},
    "method": {"name": "moca", "weight": 10.0, "tau": 0.1, "momentum": 0.99, "queue_size": 100},
    "optim": {"lr": 0.001},
    "train": {"epochs": 2, "batch_size": 64, "latent_only": False},
    "eval": {"every": 1, "metrics": [], "num_samples": 300, "projections": 64, "seed": 1234,
             "fid": {"num_samples": 200, "split": "test", "dims": 2048},
             "swd": {"mode": "pggan", "num_images": 200, "split": "test"},
             "artifacts": {"tsne_points": 40}},
    "seed": 0,
}

# sweep name -> a grid of TEST DATA (seed always last) for the tests below that compute their
# expectations from it; every other sweep of the registry gets its points from its own sweep
# file (derived_points), so a new item needs no entry here
GRIDS = {
    "synthetic_latent": {"method.name": ["moca", "mmd", "swd", "sinkhorn"], "seed": [0, 1]},
    "convergence": {"method.name": ["moca", "mmd"], "method.weight": [10.0, 100.0], "seed": [0, 1]},
    "paper_convergence": {"method.name": ["moca", "mmd"], "method.weight": [10.0, 100.0], "seed": [0, 1]},
    "paper_lambda": {"method.weight": [10.0, 100.0, 1000.0], "seed": [0, 1]},
    "paper_temperature": {"method.tau": [0.05, 0.5], "method.weight": [100.0, 1000.0], "seed": [0, 1]},
    "paper_methods_cifar10": {"method.name": ["moca", "mmd"], "model.arch": ["a1", "a2"], "seed": [0, 1]},
    "paper_momentum": {"method.momentum": [0.99, 0.999], "seed": [0, 1]},
    "paper_queue": {"method.queue_size": [5000, 10000], "seed": [0, 1]},
}
EPOCHS = [0, 1, 2]
MAX_DERIVED_POINTS = 4  # settings (seed-free) taken from a sweep file, each with seeds 0 and 1

REFS = {ref.name: ref for item in ITEMS.values() for ref in item.sweeps}
GRID_ITEMS = sorted(i for i, item in ITEMS.items()  # items fed by grid sweeps (a search's have their own tests)
                    if not any("search" in yaml.safe_load((ROOT / r.file).read_text()) for r in item.sweeps))


def derived_points(name: str) -> tuple[list[str], list[tuple]]:
    """The varied keys of the registry's sweep ``name`` (seed last) and its first settings, each
    with seeds 0 and 1, read from the sweep file itself (cases stay as the file pairs them)."""
    from harness.sweep import load_sweep

    sweep = load_sweep(ROOT / REFS[name].file, [])
    keys = [k for k in sweep.name_keys if k != "seed"]
    settings = list(dict.fromkeys(tuple(json.dumps(r.varied.get(k)) for k in keys) for r in sweep.runs))
    settings = [tuple(json.loads(v) for v in point) for point in settings[:MAX_DERIVED_POINTS]]
    return [*keys, "seed"], [(*point, seed) for point in settings for seed in (0, 1)]


def fid_of(point: int, seed: int) -> float:
    """The fabricated final FID of the grid point ``point`` (seed-free index) and ``seed``."""
    return 60.0 + 5.0 * point + seed


def curve_of(point: int, seed: int, epoch: int) -> float:
    return 1.0 + 0.5 * point + 0.1 * seed + 1.0 / (epoch + 1)


def set_dotted(tree: dict, key: str, value) -> None:
    *head, last = key.split(".")
    for part in head:
        tree = tree.setdefault(part, {})
    tree[last] = value


def fabricate(results: Path, name: str, states: dict[int, str] | None = None, start: int = 0) -> list[str]:
    """Write TEST DATA: a sweep folder with one run folder per grid point; returns the run ids.

    ``states`` maps a run's index to a status other than done ("pending" = no run folder).
    """
    if name in GRIDS:
        keys, combos = list(GRIDS[name]), list(itertools.product(*GRIDS[name].values()))
    else:
        keys, combos = derived_points(name)
    folder = results / name
    folder.mkdir(parents=True, exist_ok=True)
    runs, ids = [], []
    points = {c: i for i, c in enumerate(dict.fromkeys(c[:-1] for c in combos))}
    for n, combo in enumerate(combos):
        rid = f"{start + n + 1:012x}"
        varied = dict(zip(keys, combo))
        runs.append({"id": rid, "name": ",".join(f"{k}={v}" for k, v in varied.items()), "varied": varied})
        ids.append(rid)
        state = (states or {}).get(n, "done")
        if state == "pending":
            continue
        cfg = copy.deepcopy(BASE)
        for k, v in varied.items():
            set_dotted(cfg, k, v)
        run = folder / rid
        run.mkdir()
        (run / "config.json").write_text(json.dumps(cfg))
        (run / "status.json").write_text(json.dumps({"state": state, "wall_time_s": 1.0, "host": "elsewhere"}))
        point, seed = points[combo[:-1]], varied["seed"]
        lines = []
        for e in EPOCHS[: 2 if state == "running" else None]:
            c = curve_of(point, seed, e)
            lines.append({"epoch": e, "step": 10 * e, "loss": c, "recon": 50.0 - point - seed, "reg": 0.1,
                          "latent_swd": c, "latent_sphere_swd": c / 2, "image_swd": 100 * c,
                          "test_recon": 40.0 - point - seed, "fid": fid_of(point, seed), "fid_n": 200})
        (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
        sv = [4.0, 3.0, 2.0, 1.0] if seed == 0 else [math.sqrt(20), math.sqrt(5), 2.0, 1.0]  # Σσ² = 30 = N
        (run / "latent_singular_values.jsonl").write_text(
            json.dumps({"epoch": 0, "singular_values": [1.0, 1.0, 1.0, 1.0]}) + "\n"
            + json.dumps({"epoch": EPOCHS[-1], "singular_values": sv}) + "\n")
        rng = np.random.default_rng(n)
        pd.DataFrame({"x": rng.normal(size=30), "y": rng.normal(size=30), "label": np.arange(30) % 3}).to_csv(
            run / "tsne.csv", index=False)
    (folder / "sweep.json").write_text(json.dumps({
        "name": name, "sweep_file": f"sweeps/{name}.yaml", "varied_keys": keys, "runs": runs}))
    return ids


def drop_metric(folder: Path, key: str) -> None:
    """Rewrite the TEST DATA metrics of every run in ``folder`` without ``key`` (not logged)."""
    for run in folder.iterdir():
        if (run / "metrics.jsonl").exists():
            rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
            (run / "metrics.jsonl").write_text("".join(json.dumps({k: v for k, v in r.items() if k != key}) + "\n"
                                                       for r in rows))


@pytest.fixture
def results(tmp_path):
    return tmp_path / "results"


# ------------------------------------------------------------------------------ registry


def test_registry_covers_the_paper_items():
    assert PAPER_IDS <= set(ITEMS)
    for item in ITEMS.values():
        assert item.kind in ("figure", "table") and item.kind == ("table" if "table" in item.id else "figure")
        assert item.sweeps and callable(item.draw) and item.paper_setting
        for ref in item.sweeps:
            assert ref.command == f"python -m harness.sweep {ref.file}"
            # a CPU-scale study sweeps/<name>.yaml, or a paper-scale sweeps/paper/<study>.yaml named paper_<study>
            assert ref.file == (f"sweeps/paper/{ref.name.removeprefix('paper_')}.yaml" if ref.intended == PAPER_SCALE
                                and ref.name.startswith("paper_") else f"sweeps/{ref.name}.yaml")
        # every item has a CPU-scale study (REPRODUCTION.md)
        assert any(ref.intended == CPU_SCALE for ref in item.sweeps) or item.id == "fig2_left"
    # every sweep file exists and is named after its results folder
    for ref in {r for item in ITEMS.values() for r in item.sweeps}:
        path = ROOT / ref.file
        assert path.is_file(), ref.file
        assert yaml.safe_load(path.read_text())["name"] == ref.name


def test_the_docs_figures_table_lists_the_registry():
    """docs/figures.md has one row per registry item, naming each sweep that feeds it (or
    saying it is fed ``as`` another row)."""
    rows = {}
    for line in (ROOT / "docs" / "figures.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 4:
            rows[cells[0].strip("`")] = " ".join(cells[2:])
    assert set(rows) == set(ITEMS)
    for item_id, item in ITEMS.items():
        text = rows[item_id]
        if text.startswith("as `"):
            text = rows[text.split("`")[1]]
        assert all(f"`{ref.name}`" in text for ref in item.sweeps), (item_id, text)


def test_the_reproduce_studies_are_derived_from_the_registry(monkeypatch):
    """make reproduce runs every sweep of the registry that is a CPU-scale study file
    (sweeps/<name>.yaml) but the searched benchmark (its own command): a new item's study
    joins without an edit of harness/reproduce."""
    import dataclasses

    from harness import reproduce
    from harness.figures import registry
    from harness.figures.base import SweepRef

    cpu = {ref.name for ref in REFS.values() if ref.file == f"sweeps/{ref.name}.yaml"}
    assert len(reproduce.STUDIES) == len(cpu) - 1 and set(reproduce.STUDIES) == cpu - {"benchmark"}
    new = dataclasses.replace(ITEMS["fig3"], id="fig_new", sweeps=(SweepRef("example_tau_lambda", CPU_SCALE),))
    monkeypatch.setitem(registry.ITEMS, "fig_new", new)
    assert reproduce.studies() == [*reproduce.STUDIES, "example_tau_lambda"]


# ------------------------------------------------------------------------------ rendering


@pytest.mark.parametrize("item_id", GRID_ITEMS)
def test_every_item_renders_its_files(results, item_id):
    item = ITEMS[item_id]
    for i, ref in enumerate(item.sweeps):
        fabricate(results, ref.name, start=1000 * i)
    out = render_item(item, results)
    assert out.state == RENDERED, out.notes
    if item.kind == "figure":
        stems = ["png", "pdf", "caption.md"]
        files = [results / "figures" / f"{item_id}.{ext}" for ext in stems]
        assert mpimg.imread(files[0]).shape[0] > 100
        assert files[1].read_bytes().startswith(b"%PDF")
        caption = files[2].read_text()
    else:
        files = [results / "tables" / f"{item_id}.{ext}" for ext in ("md", "tex", "csv")]
        caption = files[0].read_text()
        assert "\\begin{table}" in files[1].read_text()
        assert len(pd.read_csv(files[2])) >= 2
    assert sorted(out.files) == sorted(files)
    # the caption states scale (derived: these configs use small_conv or a limited dataset), data, N
    assert "CPU-scale" in caption and "differs from the paper's setting" in caption
    assert "data.name = " in caption and "only done runs are shown" in caption


def test_fig2_left_draws_the_mean_over_seeds(results):
    fabricate(results, "synthetic_latent")
    s = load_sweep_results(results, "synthetic_latent")
    fig = ITEMS["fig2_left"].draw(ItemData(ITEMS["fig2_left"], [s], {"synthetic_latent": "CPU-scale"})).figure
    ax = fig.axes[0]
    handle = next(h for h in ax.get_legend().legend_handles if h.get_label() == "moca")
    line = next(ln for ln in ax.get_lines() if len(ln.get_xdata()) and ln.get_color() == handle.get_color())
    # grid point 0 is moca; the mean over seeds 0 and 1 of curve_of(0, seed, e)
    assert list(line.get_xdata()) == EPOCHS
    expected = [np.mean([curve_of(0, s_, e) for s_ in (0, 1)]) for e in EPOCHS]
    np.testing.assert_allclose(line.get_ydata(), expected)
    # its band is the 95 % Student's t interval of the mean over the two seeds, as the caption says
    band = next(c for c in ax.collections if np.allclose(c.get_facecolor()[0][:3], to_rgb(handle.get_color())))
    vertices = band.get_paths()[0].vertices
    at0 = vertices[np.isclose(vertices[:, 0], 0.0), 1]
    sd = np.std([curve_of(0, 0, 0), curve_of(0, 1, 0)], ddof=1)
    half = 12.706204736174704 * sd / np.sqrt(2)  # t_{0.975, 1}
    np.testing.assert_allclose([at0.min(), at0.max()], [expected[0] - half, expected[0] + half])


def test_fig3_draws_the_final_epoch_spectrum(results):
    fabricate(results, "paper_lambda")
    s = load_sweep_results(results, "paper_lambda")
    ax = plots.fig3(ItemData(ITEMS["fig3"], [s], {s.name: "CPU-scale"})).figure.axes[0]
    data_lines = [ln for ln in ax.get_lines() if len(ln.get_xdata()) == 4]
    assert len(data_lines) == 3  # one per λ; the final line of each run's file, not epoch 0
    for line in data_lines:
        np.testing.assert_allclose(line.get_ydata(), [(4 + math.sqrt(20)) / 2, (3 + math.sqrt(5)) / 2, 2.0, 1.0])
    iso = [ln for ln in ax.get_lines() if ln.get_label() == "isotropic: √(N/d)"]
    # unit-norm latents: Σσ² = N = 30 rows, d = 4
    assert len(iso) == 1 and iso[0].get_ydata()[0] == pytest.approx(math.sqrt(30 / 4))


def test_tables_compute_mean_sd_and_keep_paper_numbers_in_their_column(results):
    fabricate(results, "paper_momentum")
    out = render_item(ITEMS["table3"], results)
    assert out.state == PARTIAL and [r.name for r in out.missing] == ["momentum"]  # only the paper scale here
    data = pd.read_csv(results / "tables" / "table3.csv")
    ours = data[data["runs"] > 0].set_index("method.momentum")
    for point, m in enumerate([0.99, 0.999]):  # hand computation: fid_of(point, seed), seeds 0, 1
        assert ours.loc[m, "fid_mean"] == pytest.approx(np.mean([fid_of(point, 0), fid_of(point, 1)]))
        assert ours.loc[m, "fid_sd"] == pytest.approx(np.std([fid_of(point, 0), fid_of(point, 1)], ddof=1))
        assert ours.loc[m, tables.PAPER_COLUMN] == tables.PAPER_TABLE3[m]
    # the paper's values that were not run get their own row, with no value of ours
    not_run = data[data["runs"] == 0].set_index("method.momentum")
    assert sorted(not_run.index) == [0.0, 0.9] and not_run["fid_mean"].isna().all()
    md = (results / "tables" / "table3.md").read_text()
    assert "| m | FID (this harness) | paper |" in md and "not run" in md and "not a result of this harness" in md


@pytest.mark.parametrize("item_id,paper", [("table1", [p[3] for p in tables.PAPER_TABLE1]),
                                           ("table2", [p[3] for p in tables.PAPER_TABLE2]),
                                           ("table3", list(tables.PAPER_TABLE3.values())),
                                           ("table5", list(tables.PAPER_TABLE5.values()))])
def test_paper_numbers_appear_only_in_the_paper_column(results, item_id, paper):
    for i, ref in enumerate(ITEMS[item_id].sweeps):  # the CPU-scale study and the paper-scale sweep
        fabricate(results, ref.name, start=1000 * i)
    assert render_item(ITEMS[item_id], results).state == RENDERED
    data = pd.read_csv(results / "tables" / f"{item_id}.csv")
    assert set(data[tables.PAPER_COLUMN].dropna()) == set(paper)
    for col in data.columns.drop(tables.PAPER_COLUMN):
        values = pd.to_numeric(data[col], errors="coerce").dropna().to_numpy()
        assert not any(np.isclose(values, v).any() for v in paper), col
    lines = (results / "tables" / f"{item_id}.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| "))
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[start:] if line.startswith("| ")]
    paper_col = rows[0].index("paper")
    texts = {f"{v:g}" for v in paper}
    assert {row[paper_col] for row in rows[1:]} - {""} == texts  # blank: the CPU-scale twin's rows
    assert not any(cell in texts for row in rows[1:] for j, cell in enumerate(row) if j != paper_col)


def test_method_table_labels_rows_like_the_paper(results):
    fabricate(results, "paper_methods_cifar10")
    render_item(ITEMS["table2"], results)
    data = pd.read_csv(results / "tables" / "table2.csv")
    # grid order: (moca, a1) = point 0, (moca, a2) = 1, (mmd, a1) = 2, (mmd, a2) = 3
    row = data.set_index("method").loc["MoCA-A2"]
    assert row["paper"] == 54.36 and row["fid_mean"] == pytest.approx(fid_of(1, 0) + 0.5)
    assert list(data["method"]) == ["WAE-MMD", "WAE-MMD", "MoCA-A1", "MoCA-A2"]


# ------------------------------------------------------------------------------ missing / partial / corrupt


def test_missing_items_are_listed_with_their_commands(results, capsys):
    assert main(["--results", str(results)]) == 0
    out = capsys.readouterr().out
    for item in ITEMS.values():
        assert f"{item.id:<11} {MISSING}" in out
        for ref in item.sweeps:
            assert f"python -m harness.sweep {ref.file}" in out
    assert not (results / "figures").exists() and not (results / "tables").exists()


def test_partial_and_corrupt_runs_are_reported_not_drawn(results, capsys):
    ids = fabricate(results, "paper_queue", states={1: "running", 2: "pending", 3: "failed"})
    (results / "paper_queue" / ids[3] / "status.json").write_text('{"state": "fa')  # truncated
    out = render_item(ITEMS["table5"], results)
    assert out.state == PARTIAL
    notes = " ".join(out.notes)
    assert f"{ids[3]}/status.json" in notes and "1 of 4 runs done" in notes  # the broken run still counts
    data = pd.read_csv(results / "tables" / "table5.csv")
    assert data["runs"].sum() == 1  # only the done run
    assert "1 of 4 runs done (1 pending, 1 running, 1 unreadable)" in (results / "tables" / "table5.md").read_text()


def test_sweep_without_done_runs_is_missing_with_its_states(results):
    fabricate(results, "paper_queue", states={0: "running", 1: "pending", 2: "failed", 3: "diverged"})
    out = render_item(ITEMS["table5"], results)
    assert out.state == MISSING and any("0 of 4 runs done" in n for n in out.notes)
    assert not (results / "tables").exists()


def test_unreadable_sweep_folder_and_unlogged_metric_are_errors(results, capsys):
    (results / "paper_methods").mkdir(parents=True)
    (results / "paper_methods" / "sweep.json").write_text("{not json")
    out = render_item(ITEMS["table1"], results)
    assert out.state == ERROR and "paper_methods" in out.notes[0]

    fabricate(results, "convergence")
    drop_metric(results / "convergence", "image_swd")
    out = render_item(ITEMS["fig2_right"], results)
    assert out.state == ERROR and "no values for image_swd" in out.notes[0]

    assert main(["--results", str(results), "--only", "table1", "fig2_right", "fig3"]) == 1
    text = capsys.readouterr()
    assert "could not draw table1, fig2_right" in text.err and f"fig3        {MISSING}" in text.out


def test_unknown_only_id_is_a_usage_error(capsys):
    assert main(["--only", "fig2_lfet"]) == 2
    assert "did you mean 'fig2_left'" in capsys.readouterr().err


# ------------------------------------------------------------------------------ scale, sources, helpers


def test_scale_is_derived_from_the_run_configs():
    item = ITEMS["table2"]
    paper_cfg = {"data.name": "cifar10", "model.arch": "a2", "train.epochs": 100, "data.train_limit": None,
                 "data.test_limit": None, "eval.fid.num_samples": 10000}
    assert derive_scale(item, [paper_cfg], 1) == (PAPER_SCALE, [])
    small = dict(paper_cfg, **{"model.arch": "small_conv", "eval.fid.num_samples": 1000})
    label, dev = derive_scale(item, [paper_cfg, small], 2)
    assert label == "CPU-scale"
    assert dev == ["model.arch = small_conv (paper: a1 or a2)", "eval.fid.num_samples = 1000 (paper: >= 10000)"]
    assert derive_scale(item, [paper_cfg], 2)[1] == ["config unknown for 1 of 2 runs"]


def test_configs_come_from_config_json_never_from_the_sweep_file(results):
    """With the run folders gone, runs.csv still draws, but configs are not guessed by
    re-expanding the sweep file (it may have changed since): the caption says they are
    unknown. With the folders, each run's config.json supplies them."""
    from harness.sweep.spec import load_sweep

    sweep_file = ROOT / "sweeps" / "convergence.yaml"
    sweep = load_sweep(sweep_file)
    folder = results / "convergence"
    folder.mkdir(parents=True)
    for n, run in enumerate(sweep.runs):  # TEST DATA with the real runs' ids and configs
        (folder / run.id).mkdir()
        (folder / run.id / "config.json").write_text(json.dumps(run.config.to_dict()))
        (folder / run.id / "status.json").write_text(json.dumps({"state": "done"}))
        (folder / run.id / "metrics.jsonl").write_text(
            "".join(json.dumps({"epoch": e, "image_swd": curve_of(n % 6, 0, e)}) + "\n" for e in EPOCHS))
    (folder / "sweep.json").write_text(json.dumps({
        "name": sweep.name, "sweep_file": str(sweep_file), "varied_keys": sweep.varied_keys,
        "runs": [{"id": r.id, "name": r.name, "varied": r.varied} for r in sweep.runs]}))
    write_collection(folder)
    s = load_sweep_results(results, "convergence")
    assert s.source == "run folders" and not s.problems
    assert set(s.done_runs["model.arch"]) == {"small_conv"} and set(s.done_curves["eval.swd.mode"]) == {"swd_pytorch"}
    render_item(ITEMS["fig2_right"], results)
    caption = (results / "figures" / "fig2_right.caption.md").read_text()
    assert "eval.swd.mode = swd_pytorch; eval.swd.num_images = 500" in caption

    for run in sweep.runs:
        for f in (folder / run.id).iterdir():
            f.unlink()
        (folder / run.id).rmdir()
    s = load_sweep_results(results, "convergence")
    assert s.source == "runs.csv" and len(s.done_runs) == len(sweep.runs) and not s.configs
    assert s.problems == [f"{len(sweep.runs)} done runs have no readable config.json"]
    out = render_item(ITEMS["fig2_right"], results)
    assert out.state == PARTIAL
    caption = (results / "figures" / "fig2_right.caption.md").read_text()
    assert "read from runs.csv" in caption and "scale unknown" in caption and "no run config available" in caption
    assert "python -m harness.sweep sweeps/paper/convergence.yaml" in caption


def test_extra_varied_keys_label_curves_instead_of_being_averaged():
    df = pd.DataFrame({"method.name": ["moca", "moca", "mmd"], "method.tau": [0.1, 0.5, None],
                       "method.weight": [1.0, 1.0, 1.0], "seed": [0, 0, 0]})
    assert extra_keys(df, ["method.name", "method.tau", "method.weight", "seed"], ["method.name"]) == ["method.tau"]


def test_table_writers_escape_their_cells():
    df = pd.DataFrame({"a_b": ["x|y", "50%"], "paper": ["1", ""]})
    assert markdown_table(df).splitlines() == ["| a_b | paper |", "|---|---|", "| x\\|y | 1 |", "| 50% |  |"]
    tex = latex_table(df, "A caption_with", "tab:t")
    assert "a\\_b" in tex and "50\\%" in tex and "\\caption{A caption\\_with}" in tex and "\\label{tab:t}" in tex


def test_a_crashing_item_is_reported_and_the_others_still_render(results, capsys, monkeypatch):
    import dataclasses

    def broken(data):
        raise RuntimeError("boom")

    fabricate(results, "paper_queue")
    fabricate(results, "paper_momentum")
    monkeypatch.setitem(ITEMS, "table5", dataclasses.replace(ITEMS["table5"], draw=broken))
    assert main(["--results", str(results), "--only", "table5", "table3"]) == 1
    out = capsys.readouterr()
    assert f"table5      {ERROR}" in out.out and "crashed: RuntimeError: boom" in out.out and "Traceback" in out.out
    assert f"table3      {PARTIAL}" in out.out and (results / "tables" / "table3.csv").is_file()
    assert not (results / "tables" / "table5.csv").exists()


def test_a_sweep_without_the_metric_is_left_out_of_a_multi_sweep_figure(results):
    fabricate(results, "convergence")
    fabricate(results, "paper_convergence", start=1000)
    drop_metric(results / "paper_convergence", "image_swd")
    out = render_item(ITEMS["fig2_right"], results)
    assert out.state == PARTIAL
    assert any("paper_convergence: no values for image_swd" in n and "left out" in n for n in out.notes)
    caption = (results / "figures" / "fig2_right.caption.md").read_text()
    assert "paper_convergence: no values for image_swd" in caption
