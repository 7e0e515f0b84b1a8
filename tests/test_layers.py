"""The layers of the code base, stated once as a table and checked on every import, function-
local imports included (an import inside a function is still a dependency).

Each rule says which modules (``importers``) may not import which (``forbidden``), with the
exceptions it allows (``allowed``, checked first). Patterns are module names; ``x.*`` means
``x`` and everything under it. Each rule is shown to catch a planted violation, and the package
has no import cycle.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PLUGINS = ("methods.*", "harness.methods.*", "harness.datasets.*", "harness.archs.*", "harness.evaluators.*",
           "harness.metrics.*")


@dataclass(frozen=True)
class Rule:
    name: str
    importers: tuple[str, ...]
    forbidden: tuple[str, ...]
    allowed: tuple[str, ...] = ()
    exempt: tuple[str, ...] = ()  # importers the rule does not apply to
    plant: tuple[str, str] = ("", "")  # (a module of the repository, an import it must not make)


RULES = [
    Rule("plug-ins use their context and harness.errors, never the config, the trainer or the sweep",
         PLUGINS, ("harness.config", "harness.trainer", "harness.train", "harness.sweep.*"),
         plant=("harness.methods.mmd", "harness.config")),
    Rule("metrics are pure functions: of the harness only I/O and seeding",
         ("harness.metrics.*",), ("harness.*",), allowed=("harness.metrics.*", "harness.atomic", "harness.seeding"),
         plant=("harness.metrics.recon", "harness.datasets")),
    Rule("the trainer knows nothing of sweeps",
         ("harness.trainer", "harness.train"), ("harness.sweep.*",),
         plant=("harness.trainer", "harness.sweep.state")),
    Rule("results readers (collect, figures, plot, report) never load the sweep scheduler",
         ("harness.collect", "harness.figures.*", "harness.plot", "harness.report"), ("harness.sweep.*",),
         plant=("harness.figures.results", "harness.sweep.engine")),
    Rule("below the sweep layer nothing imports it (only the sweep and what drives it, reproduce)",
         ("harness.*", "methods.*"), ("harness.sweep.*",), exempt=("harness.sweep.*", "harness.reproduce.*"),
         plant=("harness.naming", "harness.sweep.identity")),
    Rule("research code never imports tools/ (the local SLURM cluster and other scripts)",
         ("harness.*", "methods.*"), ("tools.*",),
         plant=("harness.run_folder", "tools.slurm_cluster")),
]


def matches(name: str, patterns: tuple[str, ...]) -> bool:
    return any(name == p or (p.endswith(".*") and (name == p[:-2] or name.startswith(p[:-1]))) for p in patterns)


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def repository() -> dict[str, str]:
    """Module name -> source of every module of the harness, the deprecated methods/ alias and tools/."""
    paths = [*ROOT.glob("harness/**/*.py"), *ROOT.glob("methods/**/*.py"), *ROOT.glob("tools/**/*.py")]
    return {module_name(p): p.read_text() for p in sorted(paths)}


def imports(name: str, source: str, known: set[str]) -> set[str]:
    """The modules ``name`` imports, function-local imports included (``from pkg import sub``
    counts as ``pkg.sub`` when that is a module)."""
    package = name if f"{name}.__init__" in known else name.rpartition(".")[0]
    out: set[str] = set()
    for node in _import_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                out.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return out


def _import_nodes(node: ast.AST):
    """The import statements under ``node`` at any depth, but those of ``if TYPE_CHECKING:``
    blocks (read by type checkers only, never run)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, (ast.Import, ast.ImportFrom)):
            yield child
        elif isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            yield from _import_nodes(ast.Module(body=child.orelse, type_ignores=[]))
        else:
            yield from _import_nodes(child)


def violations(modules: dict[str, str]) -> list[str]:
    known = set(modules) | {f"{m}.__init__" for m in modules if _is_package(m, modules)}
    found = []
    for name, source in modules.items():
        for target in sorted(imports(name, source, known)):
            for rule in RULES:
                if matches(name, rule.importers) and not matches(name, rule.exempt) \
                        and matches(target, rule.forbidden) and not matches(target, rule.allowed) and not target.startswith(name + "."):
                    found.append(f"{name} imports {target}: {rule.name}")
    return found


def _is_package(name: str, modules: dict[str, str]) -> bool:
    return any(other.startswith(name + ".") for other in modules)


def test_the_code_base_keeps_its_layers():
    assert violations(repository()) == []


@pytest.mark.parametrize("rule", RULES, ids=[r.plant[0] for r in RULES])
def test_a_planted_violation_of_each_layer_is_caught(rule):
    """One forbidden import planted inside a function of a real module (a function-local
    import) is reported, naming the rule (and only rules that forbid that import)."""
    modules = repository()
    importer, target = rule.plant
    assert importer in modules and (target in modules or target.rpartition(".")[0] in modules)
    before = set(violations(modules))
    head, _, tail = target.rpartition(".")
    modules[importer] += f"\n\ndef _planted():\n    from {head} import {tail}\n    return {tail}\n"
    new = [v for v in violations(modules) if v not in before]
    assert f"{importer} imports {target}: {rule.name}" in new
    assert all(v.startswith(f"{importer} imports {target}: ") for v in new)


def import_graph(modules: dict[str, str]) -> dict[str, set[str]]:
    known = set(modules) | {f"{m}.__init__" for m in modules if _is_package(m, modules)}
    return {m: {t for t in imports(m, src, known) if t in modules and t != m} for m, src in modules.items()}


def test_the_package_has_no_import_cycle():
    """No cycle among module-level or function-local imports (spec <-> search was one)."""
    assert _cycles(import_graph(repository())) == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_a_planted_cycle_is_caught():
    modules = repository()
    modules["harness.naming"] += "\n\ndef _planted():\n    from harness.sweep import spec\n"
    assert any("harness.naming" in c and "harness.sweep.spec" in c for c in _cycles(import_graph(modules)))


def test_the_old_methods_package_is_a_warning_alias():
    """The regularizers live in harness.methods; ``methods`` stays importable for one release
    (the same module objects), with a DeprecationWarning."""
    import subprocess
    import sys

    code = ("import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
            "import harness.methods.moca\n"
            "try:\n    import methods\nexcept DeprecationWarning as e:\n    print('warned:', e)\n"
            "warnings.simplefilter('ignore')\n"
            "import methods, methods.moca\nfrom methods.moca import MoCA\n"
            "print(methods.moca is harness.methods.moca, methods.REGULARIZERS is harness.methods.REGULARIZERS)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.splitlines() == ["warned: the package 'methods' is now 'harness.methods'; import that instead",
                                "True True"]
