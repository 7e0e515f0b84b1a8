"""The sweep algebra (harness/sweep/grid.py) and the dotted-key module (harness/dotted.py),
against hand-written expectations; the sweep files' expansion through them is pinned in
test_sweep_expansion_pinned.py."""

from __future__ import annotations

import pytest

from harness import dotted
from harness.errors import ConfigError
from harness.sweep import grid as G


def test_sweep_fixed_and_cases_make_points():
    assert G.sweep("a", [1, 2]) == [{"a": 1}, {"a": 2}]
    assert G.fixed("b", 0, length=3) == [{"b": 0}, {"b": 0}, {"b": 0}]
    given = [{"a": 1}, {"a": 2, "b": 3}, {}]
    out = G.cases(given)
    assert out == given and out[0] is not given[0]


def test_product_varies_the_first_grid_slowest_and_later_grids_win():
    got = G.product(G.sweep("a", [1, 2]), G.sweep("b", ["x", "y", "z"]))
    assert got == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
                   {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert G.size(G.sweep("a", [1, 2]), G.sweep("b", ["x", "y", "z"])) == 6
    assert G.product(G.cases([{"a": 1, "c": 0}]), G.sweep("a", [5])) == [{"a": 5, "c": 0}]
    assert G.product() == [{}]


def test_zip_pairs_pointwise_and_refuses_unequal_lengths():
    assert G.zip_(G.sweep("m", ["moca", "mmd"]), G.sweep("w", [100, 10])) == [
        {"m": "moca", "w": 100}, {"m": "mmd", "w": 10}]
    assert G.zip_(G.sweep("s", [0, 1]), G.fixed("e", 3, length=2)) == [{"s": 0, "e": 3}, {"s": 1, "e": 3}]
    with pytest.raises(G.GridError, match=r"\[2, 3\]"):
        G.zip_(G.sweep("a", [1, 2]), G.sweep("b", [1, 2, 3]))


def test_chain_concatenates_and_composes_with_product():
    seeds = G.sweep("seed", [0, 1])
    got = G.chain(G.product(G.fixed("m", "moca"), seeds), G.product(G.fixed("m", "mmd"), G.fixed("seed", 7)))
    assert got == [{"m": "moca", "seed": 0}, {"m": "moca", "seed": 1}, {"m": "mmd", "seed": 7}]


def test_iter_product_is_lazy():
    huge = [G.sweep(f"k{i}", range(10)) for i in range(12)]  # 10^12 points
    assert G.size(*huge) == 10**12
    assert next(G.iter_product(*huge)) == {f"k{i}": 0 for i in range(12)}


def test_dotted_flatten_paths_lookup_set_path_overlaps():
    tree = {"method": {"name": "moca", "tau": 0.1}, "eval": {"fid": {}}, "seed": 0}
    assert dotted.flatten(tree) == {"method.name": "moca", "method.tau": 0.1, "seed": 0}
    assert dotted.flatten(tree, keep_empty=True) == {"method.name": "moca", "method.tau": 0.1,
                                                     "eval.fid": {}, "seed": 0}
    assert dotted.flatten(3, "a.b") == {"a.b": 3} and dotted.flatten({}, keep_empty=True) == {}
    assert dotted.paths(tree) == {"method", "method.name", "method.tau", "eval", "eval.fid", "seed"}
    assert dotted.lookup(tree, "method.tau") == (True, 0.1)
    assert dotted.lookup(tree, "method.kernel") == (False, None)
    assert dotted.lookup({"a": None}, "a") == (True, None)
    dotted.set_path(tree, ["optim", "lr"], 0.5)
    assert tree["optim"] == {"lr": 0.5}
    with pytest.raises(ConfigError, match="'seed' is not a section"):
        dotted.set_path(tree, ["seed", "x"], 1, label="seed.x")
    assert dotted.overlaps("method", "method.tau") and dotted.overlaps("a.b", "a.b")
    assert not dotted.overlaps("method.tau", "method.ta")


def test_dotted_keys_have_one_home():
    """set_path, lookup and flattening are defined in harness/dotted.py only."""
    import ast
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    homes = {}
    for path in [*root.glob("harness/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") in (
                    "set_path", "lookup", "flatten", "flat", "flat_keys"):
                homes.setdefault(node.name, []).append(str(path.relative_to(root)))
    assert all(files == ["harness/dotted.py"] for files in homes.values()), homes
