"""Dotted config keys (``method.tau`` = ``tree["method"]["tau"]``): the one place that reads,
writes, flattens and compares them (torch-free, no harness import but the config error).

Used by the config's ``--set`` overrides, the sweep files, the search spaces, runs.csv, the
figures' config columns and TensorBoard's hyper-parameters.
"""

from __future__ import annotations

from typing import Any

from harness.errors import ConfigError


def flatten(tree: Any, prefix: str = "", keep_empty: bool = False) -> dict[str, Any]:
    """Nested mappings to ``{dotted key: leaf value}``, in the tree's order.

    An empty mapping below the top is a leaf ``{}`` with ``keep_empty`` (a sweep that sets
    ``eval.fid: {}`` sets that key), and nothing otherwise; a non-mapping ``tree`` is the one
    leaf ``{prefix: tree}`` (nothing when ``prefix`` is empty)."""
    if isinstance(tree, dict) and (tree or not keep_empty or not prefix):
        out: dict[str, Any] = {}
        for key, value in tree.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key), keep_empty))
        return out
    return {prefix: tree} if prefix else {}


def paths(tree: Any) -> set[str]:
    """Every dotted key of ``tree``, its sections included (``method`` and ``method.tau``)."""
    out: set[str] = set()
    for key in flatten(tree, keep_empty=True):
        parts = key.split(".")
        out.update(".".join(parts[:n]) for n in range(1, len(parts) + 1))
    return out


def lookup(tree: Any, key: str) -> tuple[bool, Any]:
    """``(True, tree[a][b][c])`` for the dotted ``key`` ``a.b.c``, or ``(False, None)`` when a
    part is missing (a config key that a run does not have is not the same as a null value)."""
    node = tree
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def set_path(tree: dict, path: list[str], value: Any, label: str | None = None) -> None:
    """Set ``tree[a][b][c] = value`` creating intermediate mappings; a part that holds a value
    other than a mapping is a :class:`ConfigError` on ``label`` (default: the dotted path)."""
    node = tree
    for i, part in enumerate(path[:-1]):
        nxt = node.get(part)
        if nxt is None:
            nxt = node[part] = {}
        if not isinstance(nxt, dict):
            raise ConfigError(label or ".".join(path), f"'{'.'.join(path[: i + 1])}' is not a section")
        node = nxt
    node[path[-1]] = value


def overlaps(a: str, b: str) -> bool:
    """Whether setting key ``a`` and key ``b`` touch the same value (equal, or one a section
    of the other: ``method`` and ``method.tau``)."""
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")
