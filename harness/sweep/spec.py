"""Sweep files: parsing, grid expansion and validation (syntax in docs/sweeps.md).

A sweep file (read by ``harness.yaml_io``: no aliases, no duplicate keys) names a base run
config and the axes to vary::

    name: tau_lambda
    base_config: ../configs/synthetic_moca.yaml   # or  base: {inline run config}
    grid:                                          # cartesian product, one axis per key
      method.tau: [0.05, 0.1]
      seed: [0, 1, 2]
    paired:                                        # keys that vary together (zipped)
      - {method.name: [moca, mmd], method.weight: [100, 10]}
    cases:                                         # one axis whose points are partial configs
      - {model.latent_dim: 64}
      - {model.latent_dim: 128, optim.lr: 3.0e-4}
    per_method:                                    # applied to runs of that method only
      moca: {method.queue_size: 1000}
      mmd: {method.kernel: imq}
    slurm: {partition: gpu, time: 120, gpus_per_node: 1}
    local: {workers_per_gpu: 4}                    # local executor: runs sharing each GPU

The sections map onto the sweep algebra (:mod:`harness.sweep.grid`): each ``grid`` key is a
``sweep``, each ``paired`` group a ``zip_`` of sweeps, ``cases`` is ``cases``, and the runs are
the ``product`` of these axes in the file's order. This module only reads the file, builds the
axes and turns each point into a validated run config.

Instead of the axes, a ``search`` section draws the runs at random from a search space per
method, at an equal budget (:mod:`harness.sweep.space`), and adds the runs of the selected
settings once the trials are done (:mod:`harness.sweep.search`).

Runs are the product of all axes. Each run's config is built in this order, later layers
winning: the base (with ``--set`` overrides), then ``per_method[<its method.name>]``, then its
axis values. Every run is validated with :func:`harness.config.config_from_dict` before
anything is written; the first error becomes one :class:`SweepError` line naming the sweep
file, the section that supplied the offending key, the key, and what is allowed, e.g.
``sweeps/x.yaml: grid method.tau: got -1.0; allowed: a number > 0``.
"""

from __future__ import annotations

import copy
import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, NamedTuple

from harness.config import (
    ConfigError,
    MethodConfig,
    RunConfig,
    config_from_dict,
    parse_override,
    read_yaml,
)
from harness.dotted import flatten, lookup, overlaps, set_path
from harness.registry import suggest
from harness.run_folder import TRAINING_METRICS
from harness.sweep import grid as G
from harness.sweep import space as S
from harness.sweep.identity import SWEEP_NAME_ALLOWED, PathEscape, inside, run_id, run_name, valid_sweep_name
from harness.sweep.resources import LocalConfig, SlurmConfig, parse_local, parse_slurm  # noqa: F401  (SlurmConfig: re-exported)

TOP_KEYS = ["name", "description", "base", "base_config", "grid", "paired", "cases", "per_method", "search", "slurm", "local"]
KEY_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
KEY_ALLOWED = "a dotted config key such as method.tau"



# Above this many runs a sweep needs ``--allow-large`` (a typo such as ``seed: range(100000)``
# in a generator script should not silently become 100,000 run folders and SLURM jobs).
MAX_RUNS = 2000


class SweepError(ValueError):
    """A bad sweep file or command line; ``str(err)`` is one line (the CLI exits with 2)."""


def _error(file: str, section: str, key: str, message: str) -> SweepError:
    where = " ".join(x for x in (section, key) if x)
    return SweepError(f"{file}: {where}: {message}" if where else f"{file}: {message}")


# ---------------------------------------------------------------------------- the sweep


@dataclass
class RunSpec:
    """One expanded run: its id, readable name, validated config and varied values."""

    id: str
    name: str
    config: RunConfig
    varied: dict[str, Any]


@dataclass
class Sweep:
    name: str
    file: str
    description: str
    runs: list[RunSpec]
    name_keys: list[str]  # the axis keys (they make up run names)
    varied_keys: list[str]  # axis keys, then per_method keys (the columns of runs.csv)
    slurm: SlurmConfig
    search: S.SearchSpec | None = None  # the parsed search section, if any
    # search sweeps: (stage, method) -> run ids, in draw / seed order (a run may be in two groups)
    groups: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    local: LocalConfig = field(default_factory=LocalConfig)


class Sourced(NamedTuple):
    """A value of a sweep point with the section of the sweep file that supplied it (named in
    the error of a run whose config the value makes invalid)."""

    value: Any
    section: str


def project_root(start: Path) -> Path:
    """The nearest folder at or above ``start`` holding pyproject.toml or .git (else ``start``)."""
    start = start.resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").exists() or (folder / ".git").exists():
            return folder
    return start


class _Parser:
    """Turns one sweep document into a :class:`Sweep`, raising :class:`SweepError`."""

    def __init__(self, path: Path, sets: list[str], selected: dict[str, dict] | None = None):
        self.path = path
        self.file = str(path)
        self.sets = sets
        self.selected = selected
        self.max_runs: int | None = None

    def err(self, section: str, key: str, message: str) -> SweepError:
        return _error(self.file, section, key, message)

    def from_config_error(self, e: ConfigError, section: str) -> SweepError:
        return self.err(section, e.key, e.message)

    # ------------------------------------------------------------------ top level

    def parse(self) -> Sweep:
        try:
            doc = read_yaml(self.path)
        except ConfigError as e:
            raise SweepError(f"{self.file}: {e.message}") from None
        if not isinstance(doc, dict):
            raise self.err("", "", "a sweep file must be a mapping with name, base or base_config, and grid")
        for key in doc:
            if key not in TOP_KEYS:
                raise self.err("", str(key), f"unknown key{suggest(key, TOP_KEYS)}; allowed: {', '.join(TOP_KEYS)}")
        name = doc.get("name")
        if not valid_sweep_name(name):
            raise self.err("", "name", f"got {name!r}; allowed: {SWEEP_NAME_ALLOWED}")
        description = doc.get("description") or ""
        if not isinstance(description, str):
            raise self.err("", "description", f"got {description!r}; allowed: a string")

        base_sets, slurm_sets = self.parse_sets()
        base, base_section = self.load_base(doc)
        base_sources = {k: base_section for k in flatten(base, keep_empty=True)}
        for path, value in base_sets:
            key = ".".join(path)
            try:
                set_path(base, path, value, label=key)
            except ConfigError as e:
                raise self.from_config_error(e, "--set") from None
            base_sources = {k: s for k, s in base_sources.items() if not overlaps(k, key)}
            base_sources.update({k: "--set" for k in flatten(value, key, keep_empty=True)})

        if self.search_sets and "search" not in doc:
            key = ".".join(["search", *self.search_sets[0][0]])
            raise self.err("--set", key, "the sweep file has no search section; allowed: keys of the base, slurm.<key>")
        search = self.parse_search(doc, base) if "search" in doc else None
        if search is not None:
            name_keys = self.search_name_keys(search)
            axis_keys = self.axis_keys = {k: "search" for k in name_keys}
        else:
            axes, name_keys, axis_keys = self.parse_axes(doc)
        per_method, pm_keys = self.parse_per_method(doc.get("per_method"))
        for path, _ in base_sets:
            key = ".".join(path)
            for other, section in [*axis_keys.items(), *pm_keys.items()]:
                if overlaps(key, other):
                    raise self.err("--set", key, f"also set by {section} {other} (which wins); "
                                   f"allowed: keys the sweep file does not set per run")
        try:
            slurm = parse_slurm(doc.get("slurm"), slurm_sets)
        except ConfigError as e:
            section = "--set" if any(e.key == ".".join(["slurm", *p]) for p, _ in slurm_sets) else ""
            raise self.from_config_error(e, section) from None

        try:
            local = parse_local(doc.get("local"))
        except ConfigError as e:
            raise self.from_config_error(e, "") from None

        varied_keys = name_keys + [k for k in pm_keys if k not in name_keys]
        if search is not None:
            self.check_size(S.size(search, self.selected), f"({search.budget} trials per method)")
            runs, groups = self.expand_search(search, base, base_sources, per_method, name_keys, varied_keys)
            return Sweep(name, self.file, description, runs, name_keys, varied_keys, slurm, search, groups, local)
        self.check_size(G.size(*axes))
        runs = self.expand(base, base_sources, G.iter_product(*axes), per_method, name_keys, varied_keys)
        return Sweep(name, self.file, description, runs, name_keys, varied_keys, slurm, local=local)

    def check_size(self, count: int, detail: str = "") -> None:
        """Refuse more than ``max_runs`` runs, counted before the (slow) expansion."""
        if self.max_runs is not None and count > self.max_runs:
            raise self.err("", "", f"{count} runs{' ' + detail if detail else ''}; allowed: at most "
                           f"{self.max_runs} (pass --allow-large to run a larger sweep)")

    def parse_sets(self) -> tuple[list, list]:
        base_sets, slurm_sets = [], []
        self.search_sets: list[tuple[list[str], Any]] = []  # search.<key>=<value> (parse_search)
        for text in self.sets:
            try:
                path, value = parse_override(text)
            except ConfigError as e:
                raise self.err("--set", "", e.message + f" (got {text!r})") from None
            if not all(path) or not KEY_RE.match(".".join(path)):
                raise self.err("--set", ".".join(path), f"not a config key; allowed: {KEY_ALLOWED} or slurm.<key>")
            if path[0] == "slurm":
                if len(path) < 2:
                    raise self.err("--set", "slurm", "allowed: slurm.<key>=<value>")
                slurm_sets.append((path[1:], value))
            elif path[0] == "search" and len(path) > 1:
                self.search_sets.append((path[1:], value))
            else:
                base_sets.append((path, value))
        return base_sets, slurm_sets

    def load_base(self, doc: dict) -> tuple[dict, str]:
        if "base" in doc and "base_config" in doc:
            raise self.err("", "base_config", "given together with base; allowed: one of base, base_config")
        if "base_config" in doc:
            rel = doc["base_config"]
            if not isinstance(rel, str) or not rel:
                raise self.err("", "base_config", f"got {rel!r}; allowed: a path relative to the sweep file")
            root = project_root(self.path.parent)
            target = self.path.parent / rel
            try:
                inside(root, target)
            except PathEscape:
                raise self.err("", "base_config", f"got {rel!r}; allowed: a file inside the project ({root})") from None
            try:
                tree = read_yaml(target)
            except ConfigError as e:
                raise self.err("", "base_config", f"{rel}: {e.message}") from None
            if tree is None:
                raise self.err("", "base_config", f"{rel}: the config file is empty; allowed: a mapping of run config sections")
            section = "base_config"
        else:
            tree, section = doc.get("base"), "base"
        if tree is None:
            tree = {}
        if not isinstance(tree, dict):
            raise self.err("", section, f"got {type(tree).__name__}; allowed: a mapping of run config sections")
        return copy.deepcopy(tree), section

    def check_key(self, section: str, key: Any) -> str:
        if not isinstance(key, str) or not KEY_RE.match(key):
            raise self.err(section, str(key), f"not a config key; allowed: {KEY_ALLOWED}")
        return key

    # ------------------------------------------------------------------ axes

    def parse_axes(self, doc: dict) -> tuple[list[G.Grid], list[str], dict[str, str]]:
        """The axes (grids of :class:`Sourced` values) in the order the file gives them (run
        names and the product follow it), the axis keys, and the section that varies each key."""
        self.axes: list[G.Grid] = []
        self.axis_keys: dict[str, str] = {}
        parsers = {"grid": self.parse_grid, "paired": self.parse_paired, "cases": self.parse_cases}
        for section in doc:
            if section in parsers and doc[section] is not None:
                parsers[section](doc[section])
        if not self.axes:
            raise self.err("grid", "", "empty; allowed: at least one key with a non-empty list of values "
                           "(in grid, paired or cases)")
        return self.axes, list(self.axis_keys), self.axis_keys

    def claim(self, section: str, key: Any, label: str | None = None) -> str:
        """Register an axis key; a key (or a parent/child of it) varied by two axes is an error."""
        key = self.check_key(label or section, key)
        for other, where in self.axis_keys.items():
            if overlaps(key, other) and where != section:
                raise self.err(label or section, key, f"also varied by {where} {other}; allowed: each key in one axis")
        self.axis_keys.setdefault(key, section)
        return key

    def values_of(self, section: str, key: str, values: Any) -> list:
        if not isinstance(values, list) or not values:
            raise self.err(section, key, f"got {values!r}; allowed: a non-empty list of values")
        return values

    def parse_grid(self, grid: Any) -> None:
        """``grid: {key: [v1, v2, ...]}``: one axis per key."""
        if not isinstance(grid, dict):
            raise self.err("grid", "", f"got {grid!r}; allowed: a mapping of config keys to lists of values")
        for key, values in grid.items():
            key = self.claim("grid", key)
            values = self.values_of("grid", key, values)
            self.axes.append(G.sweep(key, [Sourced(v, "grid") for v in values]))

    def parse_paired(self, paired: Any) -> None:
        """``paired: [{k1: [a1, a2], k2: [b1, b2]}, ...]``: one axis per group, lists zipped."""
        if not isinstance(paired, list):
            raise self.err("paired", "", f"got {paired!r}; allowed: a list of mappings of keys to equal-length lists")
        for i, group in enumerate(paired):
            section = f"paired[{i}]"
            if not isinstance(group, dict) or not group:
                raise self.err(section, "", f"got {group!r}; allowed: a mapping of keys to equal-length lists")
            lengths = {}
            for key, values in group.items():
                key = self.claim(section, key)
                lengths[key] = len(self.values_of(section, key, values))
            if len(set(lengths.values())) > 1:
                sizes = ", ".join(f"{k}: {n}" for k, n in lengths.items())
                raise self.err(section, "", f"lists of different lengths ({sizes}); allowed: equal lengths")
            self.axes.append(G.zip_(*(G.sweep(k, [Sourced(v, section) for v in group[k]]) for k in group)))

    def parse_cases(self, cases: Any) -> None:
        """``cases: [{k1: a, k2: b}, {k1: c}, ...]``: one axis whose points are partial configs."""
        if not isinstance(cases, list) or not cases:
            raise self.err("cases", "", f"got {cases!r}; allowed: a non-empty list of mappings of keys to values")
        points = []
        for j, case in enumerate(cases):
            case = {} if case is None else case
            if not isinstance(case, dict):
                raise self.err(f"cases[{j}]", "", f"got {case!r}; allowed: a mapping of keys to values")
            for key in case:
                self.claim("cases", key, f"cases[{j}]")
            points.append({k: Sourced(v, f"cases[{j}]") for k, v in case.items()})
        self.axes.append(G.cases(points))

    def parse_per_method(self, data: Any) -> tuple[dict[str, dict], dict[str, str]]:
        from harness.methods import REGULARIZERS

        if data is None:
            return {}, {}
        if not isinstance(data, dict):
            raise self.err("per_method", "", f"got {data!r}; allowed: a mapping of method names to overrides")
        names = REGULARIZERS.names()
        out: dict[str, dict] = {}
        keys: dict[str, str] = {}
        for method, overrides in data.items():
            section = f"per_method.{method}"
            if method not in names:
                raise self.err("per_method", str(method), f"unknown method{suggest(method, names)}; allowed: {', '.join(names)}")
            overrides = overrides or {}
            if not isinstance(overrides, dict):
                raise self.err(section, "", f"got {overrides!r}; allowed: a mapping of config keys to values")
            for key in overrides:
                self.check_key(section, key)
                if overlaps(key, "method.name"):
                    raise self.err(section, key, "the method is chosen by the key of per_method; "
                                   "allowed: keys other than method.name")
                keys.setdefault(key, section)
            out[method] = dict(overrides)
        return out, keys

    # ------------------------------------------------------------------ search

    def parse_search(self, doc: dict, base: dict) -> S.SearchSpec:
        from harness.methods import REGULARIZERS

        for section in ("grid", "paired", "cases"):
            if doc.get(section) is not None:
                raise self.err("", section, "given together with search; allowed: either search "
                               "(its trials are the runs) or grid / paired / cases")
        data = copy.deepcopy(doc["search"])
        for path, value in self.search_sets:  # e.g. --set search.budget=4 (a prefix of the trials)
            if not isinstance(data, dict):
                break  # parse_search reports the section itself
            try:
                set_path(data, path, value, label=".".join(["search", *path]))
            except ConfigError as e:
                raise self.from_config_error(e, "--set") from None
        try:
            return S.parse_search(data, base, self.check_key, REGULARIZERS.names())
        except S.SearchSpecError as e:
            raise self.err(e.section, e.key, e.message) from None

    @staticmethod
    def search_name_keys(spec: S.SearchSpec) -> list[str]:
        keys = ["method.name", *spec.space_keys]
        keys += [k for k in spec.fixed if k not in keys]
        return keys + S.STAGE_KEYS

    def expand_search(self, spec, base: dict, base_sources: dict[str, str], per_method: dict[str, dict],
                      name_keys: list[str], varied_keys: list[str]) -> tuple[list[RunSpec], dict]:
        """The runs of a search (:func:`harness.sweep.space.points`), each validated as in
        :meth:`expand`; the ends of every range are validated too, before any draw counts."""

        def one(point: S.Point) -> RunSpec:
            sourced = {k: Sourced(v, point.section) for k, v in point.values.items()}
            return self.expand(base, base_sources, [sourced], per_method, name_keys, varied_keys)[0]

        for point in S.probe_points(spec):
            one(point)
        runs: list[RunSpec] = []
        groups: dict[tuple[str, str], list[str]] = {}
        first: dict[str, Any] = {}
        base_seed = base.get("seed", RunConfig.seed)
        for point in S.points(spec, base_seed, self.selected):
            run = one(point)
            if run.id in first:
                other = first[run.id]
                if point.stage == S.TRIAL or other.stage == S.TRIAL:
                    raise self.err(point.section, "", f"trials {other.index} and {point.index} of {point.method} "
                                   "drew the same values; allowed: a space with more distinct points than the "
                                   "budget (or a smaller budget)")
            else:
                first[run.id] = point
                runs.append(run)
            groups.setdefault((point.stage, point.method), []).append(run.id)
        self.check_select(spec, [r for r in runs if r.config.eval.split == "val"])
        return runs, groups

    def check_select(self, spec: S.SearchSpec, trials: list[RunSpec]) -> None:
        """``select.metric`` must be a metric every trial logs (the training loop's or one of
        its evaluators', :func:`harness.evaluators.logged_metrics`): a typo fails here, not
        after every trial has trained."""
        from harness.evaluators import logged_metrics

        for run in trials:
            logged = [*TRAINING_METRICS, *logged_metrics(run.config)]
            if not any(fnmatch.fnmatchcase(spec.metric, pattern) for pattern in logged):
                raise self.err("search", "select.metric", f"got {spec.metric!r}{suggest(spec.metric, logged)}; "
                               f"allowed: a metric the trials of {run.config.method.name} log "
                               f"(eval.metrics {run.config.eval.metrics}): {', '.join(logged)}")

    # ------------------------------------------------------------------ expansion

    def expand(self, base: dict, base_sources: dict[str, str], points: Iterable[G.Point],
               per_method: dict[str, dict], name_keys: list[str], varied_keys: list[str]) -> list[RunSpec]:
        """One validated run per point (key -> :class:`Sourced` value): the base, then the
        run's ``per_method`` overrides, then its own values."""
        runs: list[RunSpec] = []
        seen: dict[str, str] = {}
        for sourced in points:
            point = {k: s.value for k, s in sourced.items()}
            point_sections = {k: s.section for k, s in sourced.items()}
            tree = copy.deepcopy(base)
            sources = dict(base_sources)
            self.apply(tree, sources, point, point_sections)
            method = tree.get("method")
            method_name = method.get("name", MethodConfig.name) if isinstance(method, dict) else None
            if isinstance(method_name, str) and method_name in per_method:
                pm = per_method[method_name]
                self.apply(tree, sources, pm, {k: f"per_method.{method_name}" for k in pm})
                self.apply(tree, sources, point, point_sections)  # the run's own values win
            try:
                cfg = config_from_dict(tree)
            except ConfigError as e:
                section = self.section_of(e.key, sources) or f"run {run_name(point, name_keys)}"
                raise self.from_config_error(e, section) from None
            resolved = cfg.to_dict()
            varied = {}
            for key in varied_keys:
                found, value = lookup(resolved, key)
                if found:
                    varied[key] = value
            rid = run_id(cfg, resolved)
            name = run_name(varied, name_keys)
            if rid in seen:
                raise self.err("grid", "", f"runs '{seen[rid]}' and '{name}' have the same config (id {rid}); "
                               "allowed: every run once")
            seen[rid] = name
            runs.append(RunSpec(rid, name, cfg, varied))
        return runs

    def apply(self, tree: dict, sources: dict[str, str], values: dict[str, Any], sections: dict[str, str]) -> None:
        for key, value in values.items():
            try:
                set_path(tree, key.split("."), copy.deepcopy(value), label=key)
            except ConfigError as e:
                raise self.from_config_error(e, sections[key]) from None
            for k in [k for k in sources if overlaps(k, key)]:
                del sources[k]
            sources.update({k: sections[key] for k in flatten(value, key, keep_empty=True)} or {key: sections[key]})

    @staticmethod
    def section_of(error_key: str, sources: dict[str, str]) -> str | None:
        """The section that supplied ``error_key`` (or its nearest enclosing key)."""
        key = re.sub(r"\[\d+\]", "", error_key or "")
        parts = key.split(".")
        for n in range(len(parts), 0, -1):
            section = sources.get(".".join(parts[:n]))
            if section:
                return section
        deeper = [section for k, section in sources.items() if key and k.startswith(key + ".")]
        return deeper[0] if deeper else None  # e.g. an unknown section named by a dotted key


def load_sweep(path: str | Path, sets: list[str] | None = None,
               selected: dict[str, dict] | None = None, max_runs: int | None = None) -> Sweep:
    """Parse, expand and validate a sweep file; raise :class:`SweepError` (one line) if bad.

    ``selected`` (search sweeps only): method -> drawn values of its chosen trial, which adds
    the tuned runs (:func:`harness.sweep.space.points`). ``max_runs``: refuse a grid with
    more runs before expanding it (the command line passes :data:`MAX_RUNS`)."""
    parser = _Parser(Path(path), list(sets or []), selected)
    parser.max_runs = max_runs
    return parser.parse()
