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

Instead of the axes, a ``search`` section draws the runs at random from a search space per
method, at an equal budget, and adds the runs of the selected settings once the trials are done
(:mod:`harness.sweep.search`).

Runs are the product of all axes. Each run's config is built in this order, later layers
winning: the base (with ``--set`` overrides), then ``per_method[<its method.name>]``, then its
axis values. Every run is validated with :func:`harness.config.config_from_dict` before
anything is written; the first error becomes one :class:`SweepError` line naming the sweep
file, the section that supplied the offending key, the key, and what is allowed, e.g.
``sweeps/x.yaml: grid method.tau: got -1.0; allowed: a number > 0``.
"""

from __future__ import annotations

import copy
import itertools
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import (
    ConfigError,
    MethodConfig,
    RunConfig,
    config_from_dict,
    from_dict,
    parse_override,
    read_yaml,
    require,
    require_choice,
    set_path,
)
from harness.naming import lookup
from harness.registry import suggest
from harness.sweep.identity import SWEEP_NAME_ALLOWED, PathEscape, inside, run_id, run_name, valid_sweep_name

TOP_KEYS = ["name", "description", "base", "base_config", "grid", "paired", "cases", "per_method", "search", "slurm", "local"]
KEY_RE = re.compile(r"\A[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*\Z")
KEY_ALLOWED = "a dotted config key such as method.tau"
# sbatch options a sweep may add besides the named ones; values end up in `#SBATCH --k=v`
# lines, so they are restricted to characters that cannot start a new line or a command
SLURM_EXTRA = ["account", "qos", "constraint", "exclude", "nodelist", "reservation", "comment",
               "mail_type", "mail_user", "gres", "licenses", "wckey"]
SLURM_SAFE_VALUE = re.compile(r"\A[A-Za-z0-9_.,:=@%+/\[\]-]{1,200}\Z")  # \Z: "$" allows a final newline
SLURM_SAFE_ALLOWED = "1-200 characters from letters, digits and _ . , : = @ % + / [ ] -"


# Above this many runs a sweep needs ``--allow-large`` (a typo such as ``seed: range(100000)``
# in a generator script should not silently become 100,000 run folders and SLURM jobs).
MAX_RUNS = 2000


class SweepError(ValueError):
    """A bad sweep file or command line; ``str(err)`` is one line (the CLI exits with 2)."""


def _error(file: str, section: str, key: str, message: str) -> SweepError:
    where = " ".join(x for x in (section, key) if x)
    return SweepError(f"{file}: {where}: {message}" if where else f"{file}: {message}")


# ---------------------------------------------------------------------------- slurm block


@dataclass
class SlurmConfig:
    """Resources of each array job of the slurm executor (one job = one run)."""

    partition: str | None = None
    time: int = 60  # minutes per job; a run that needs longer is requeued and resumes
    gpus_per_node: int = 0
    tasks_per_run: int = 1  # >1: one run on that many processes of one node (DDP, one GPU each)
    runs_per_task: int = 1  # >1: each array job trains that many runs at once, sharing its GPUs
    cpus_per_task: int = 2  # also the run's torch thread count
    mem_gb: float | None = None  # None = the partition's default
    array_parallelism: int = 32  # array tasks running at once (per submitted array)
    max_requeues: int = 3  # requeues after a timeout (preemptions requeue without limit)
    signal_delay_s: int = 120  # USR2 this long before the time limit, to checkpoint and requeue
    extra: dict = field(default_factory=dict)  # allow-listed sbatch options (SLURM_EXTRA)

    def check(self, p: str = "slurm") -> None:
        if self.partition is not None:
            require(bool(SLURM_SAFE_VALUE.match(self.partition)), f"{p}.partition", self.partition, SLURM_SAFE_ALLOWED)
        require(self.time >= 1, f"{p}.time", self.time, "an integer >= 1 (minutes)")
        require(self.gpus_per_node >= 0, f"{p}.gpus_per_node", self.gpus_per_node, "an integer >= 0")
        require(self.tasks_per_run >= 1, f"{p}.tasks_per_run", self.tasks_per_run, "an integer >= 1")
        require(self.runs_per_task >= 1, f"{p}.runs_per_task", self.runs_per_task, "an integer >= 1")
        require(self.runs_per_task == 1 or self.tasks_per_run == 1, f"{p}.runs_per_task", self.runs_per_task,
                "1 when slurm.tasks_per_run > 1 (a DDP run has its GPUs to itself)")
        require(self.gpus_per_node in (0, self.tasks_per_run) or self.tasks_per_run == 1, f"{p}.gpus_per_node",
                self.gpus_per_node, f"0 or slurm.tasks_per_run ({self.tasks_per_run}): one GPU per process of a run")
        require(self.cpus_per_task >= 1, f"{p}.cpus_per_task", self.cpus_per_task, "an integer >= 1")
        require(self.mem_gb is None or self.mem_gb > 0, f"{p}.mem_gb", self.mem_gb, "null or a number > 0")
        require(self.array_parallelism >= 1, f"{p}.array_parallelism", self.array_parallelism, "an integer >= 1")
        require(self.max_requeues >= 0, f"{p}.max_requeues", self.max_requeues, "an integer >= 0")
        require(0 <= self.signal_delay_s < self.time * 60, f"{p}.signal_delay_s", self.signal_delay_s,
                "an integer >= 0 and below the time limit in seconds")
        for key, value in self.extra.items():
            require_choice(key, f"{p}.extra.{key}", SLURM_EXTRA)
            ok = isinstance(value, (str, int)) and not isinstance(value, bool) and SLURM_SAFE_VALUE.match(str(value))
            require(bool(ok), f"{p}.extra.{key}", value, SLURM_SAFE_ALLOWED)


def parse_slurm(data: Any, sets: list[tuple[list[str], Any]]) -> SlurmConfig:
    """Build the slurm block from the sweep file's mapping and ``--set slurm.k=v`` overrides."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("slurm", f"expected a mapping of keys, got {data!r}")
    data = copy.deepcopy(data)
    for path, value in sets:
        set_path(data, path, value, label=".".join(["slurm", *path]))
    extra = data.pop("extra", None) or {}
    if not isinstance(extra, dict):
        raise ConfigError("slurm.extra", f"got {extra!r}; allowed: a mapping of sbatch options ({', '.join(SLURM_EXTRA)})")
    cfg = from_dict(SlurmConfig, data, "slurm")
    cfg.extra = dict(extra)
    cfg.check()
    return cfg


# ---------------------------------------------------------------------------- local block


@dataclass
class LocalConfig:
    """GPU placement of the local executor (``--gpus`` / ``--workers-per-gpu`` override it)."""

    gpus: list[int] | None = None  # GPU indices to use; None = every visible GPU
    workers_per_gpu: int = 1  # runs trained at once on each GPU (CPU-scale runs leave a GPU idle)

    def check(self, p: str = "local") -> None:
        require(self.workers_per_gpu >= 1, f"{p}.workers_per_gpu", self.workers_per_gpu, "an integer >= 1")
        require(self.gpus is None or (len(self.gpus) > 0 and all(g >= 0 for g in self.gpus)
                                      and len(set(self.gpus)) == len(self.gpus)),
                f"{p}.gpus", self.gpus, "null or a list of distinct GPU indices >= 0")


def parse_local(data: Any) -> LocalConfig:
    cfg = from_dict(LocalConfig, data, "local")
    cfg.check()
    return cfg


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
    search: Any = None  # the parsed search section (harness.sweep.search.SearchSpec), if any
    # search sweeps: (stage, method) -> run ids, in draw / seed order (a run may be in two groups)
    groups: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    local: LocalConfig = field(default_factory=LocalConfig)


@dataclass
class _Axis:
    """One factor of the product: a list of points (key -> value), each with its section."""

    points: list[dict[str, Any]]
    sections: list[str]


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: value} if prefix else {}


def _overlaps(a: str, b: str) -> bool:
    return a == b or a.startswith(b + ".") or b.startswith(a + ".")


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
        base_sources = {k: base_section for k in _flatten(base, "")}
        for path, value in base_sets:
            key = ".".join(path)
            try:
                set_path(base, path, value, label=key)
            except ConfigError as e:
                raise self.from_config_error(e, "--set") from None
            base_sources = {k: s for k, s in base_sources.items() if not _overlaps(k, key)}
            base_sources.update({k: "--set" for k in _flatten(value, key)})

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
                if _overlaps(key, other):
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
            runs, groups = self.expand_search(search, base, base_sources, per_method, name_keys, varied_keys)
            return Sweep(name, self.file, description, runs, name_keys, varied_keys, slurm, search, groups, local)
        count = math.prod(len(axis.points) for axis in axes)
        if self.max_runs is not None and count > self.max_runs:  # before the (slow) expansion
            raise self.err("", "", f"{count} runs; allowed: at most {self.max_runs} "
                           "(pass --allow-large to run a larger sweep)")
        runs = self.expand(base, base_sources, axes, per_method, name_keys, varied_keys)
        return Sweep(name, self.file, description, runs, name_keys, varied_keys, slurm, local=local)

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

    def parse_axes(self, doc: dict) -> tuple[list[_Axis], list[str], dict[str, str]]:
        """The axes in the order the file gives them (run names and the product follow it),
        the axis keys, and the section that varies each key."""
        self.axes: list[_Axis] = []
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
            if _overlaps(key, other) and where != section:
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
            self.axes.append(_Axis([{key: v} for v in values], ["grid"] * len(values)))

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
            n = next(iter(lengths.values()))
            self.axes.append(_Axis([{k: group[k][j] for k in group} for j in range(n)], [section] * n))

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
            points.append(dict(case))
        self.axes.append(_Axis(points, [f"cases[{j}]" for j in range(len(cases))]))

    def parse_per_method(self, data: Any) -> tuple[dict[str, dict], dict[str, str]]:
        from methods import REGULARIZERS

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
                if _overlaps(key, "method.name"):
                    raise self.err(section, key, "the method is chosen by the key of per_method; "
                                   "allowed: keys other than method.name")
                keys.setdefault(key, section)
            out[method] = dict(overrides)
        return out, keys

    # ------------------------------------------------------------------ search

    def parse_search(self, doc: dict, base: dict):
        from harness.sweep import search as S
        from methods import REGULARIZERS

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
    def search_name_keys(spec) -> list[str]:
        from harness.sweep.search import STAGE_KEYS

        keys = ["method.name", *spec.space_keys]
        keys += [k for k in spec.fixed if k not in keys]
        return keys + STAGE_KEYS

    def expand_search(self, spec, base: dict, base_sources: dict[str, str], per_method: dict[str, dict],
                      name_keys: list[str], varied_keys: list[str]) -> tuple[list[RunSpec], dict]:
        """The runs of a search (:func:`harness.sweep.search.points`), each validated as in
        :meth:`expand`; the ends of every range are validated too, before any draw counts."""
        from harness.sweep import search as S

        def one(point) -> RunSpec:
            axis = _Axis([point.values], [point.section])
            return self.expand(base, base_sources, [axis], per_method, name_keys, varied_keys)[0]

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
        return runs, groups

    # ------------------------------------------------------------------ expansion

    def expand(self, base: dict, base_sources: dict[str, str], axes: list[_Axis],
               per_method: dict[str, dict], name_keys: list[str], varied_keys: list[str]) -> list[RunSpec]:
        runs: list[RunSpec] = []
        seen: dict[str, str] = {}
        for combo in itertools.product(*(range(len(a.points)) for a in axes)):
            point: dict[str, Any] = {}
            point_sections: dict[str, str] = {}
            for axis, i in zip(axes, combo):
                point.update(axis.points[i])
                point_sections.update({k: axis.sections[i] for k in axis.points[i]})
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
            for k in [k for k in sources if _overlaps(k, key)]:
                del sources[k]
            sources.update({k: sections[key] for k in _flatten(value, key)} or {key: sections[key]})

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
    the tuned runs (:func:`harness.sweep.search.points`). ``max_runs``: refuse a grid with
    more runs before expanding it (the command line passes :data:`MAX_RUNS`)."""
    parser = _Parser(Path(path), list(sets or []), selected)
    parser.max_runs = max_runs
    return parser.parse()
