"""Plug-in settings: the keys that datasets, architectures, priors and evaluators add to a run config.

The sections ``data``, ``model`` and ``eval`` of a run config (:mod:`harness.config`) declare
only the keys every plug-in shares (``data.name``, ``model.latent_dim``, ``eval.every``). A
plug-in that needs settings of its own declares them in its own file, as regularizers do: a
``Config`` dataclass (with ``check(self, prefix)``, one-line :class:`~harness.errors.ConfigError`
on a bad value), registered with the plug-in (``@DATASETS.register("synthetic",
Config=SyntheticConfig)``, or a class attribute ``Config``). Adding a plug-in with settings is
therefore one file. How its keys appear in the YAML:

* ``flat`` (datasets into ``data:``, architectures and priors into ``model:``): the fields are
  keys of the section itself (the synthetic task's ``data.num_points``, the convolutional
  architectures' ``model.width``). Two plug-ins may declare the same key only with the same
  type and default: they then share it (every conv architecture reads ``model.width``).
* ``nested`` (evaluators into ``eval:``): the ``Config`` is one sub-block named by the
  evaluator's ``config_key`` (``eval.fid``, ``eval.swd``).

Every registered plug-in's keys are present in every config, whichever plug-in is selected, so a
run's ``config.json``, and with it its run id, does not depend on which plug-ins exist besides
its own; the keys are those the sections had before the plug-ins owned them, so YAML files and
the ids of committed results are unchanged. The class with all keys (the *full* section) is
built from the registries on first use and cached; creating a section (``DataConfig(name=...)``)
gives an instance of it. Building it imports the plug-in packages (torch).
"""

from __future__ import annotations

import dataclasses
import importlib
import typing
from typing import Any, Iterator

# section class name -> (package, registry attribute, how its plug-ins' keys appear)
PLUGIN_SETTINGS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "DataConfig": (("harness.datasets", "DATASETS", "flat"),),
    "ModelConfig": (("harness.archs", "ARCHS", "flat"), ("harness.priors", "PRIORS", "flat")),
    "EvalConfig": (("harness.evaluators", "EVALUATORS", "nested"),),
}

_FULL: dict[tuple, type] = {}


class PluginSection:
    """Base of the config sections that plug-ins extend (see the module docstring). Creating
    one gives an instance of its full class: the section's own keys plus every registered
    plug-in's."""

    def __new__(cls, *args, **kwargs):
        if not cls.__dict__.get("_plugin_full"):
            cls = full_section(cls)
        return super().__new__(cls)


def _registries(section: type) -> Iterator[tuple[Any, str]]:
    for package, attr, how in PLUGIN_SETTINGS[section.__name__]:
        yield getattr(importlib.import_module(package), attr), how


def _plugin_configs(section: type) -> list[tuple[type, str, str]]:
    """(Config class, how, sub-block key) of every registered plug-in with settings, each
    Config once (several plug-ins may share one, e.g. the conv architectures)."""
    out: list[tuple[type, str, str]] = []
    for registry, how in _registries(section):
        for name in registry.names():
            obj = registry.get(name)
            pcfg = getattr(obj, "Config", None)
            if pcfg is None or any(pcfg is seen for seen, _, _ in out):
                continue
            out.append((pcfg, how, getattr(obj, "config_key", "") or name))
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default is dataclasses.MISSING else f.default


def full_section(section: type) -> type:
    """``section`` with the keys of every registered plug-in added (cached per set of
    registered plug-ins). A plug-in key that clashes with a key of the section, or with a
    different key of the same name, is a programming error (TypeError at first use)."""
    if section.__dict__.get("_plugin_full"):
        return section
    cache_key = (section, tuple(tuple(r.names()) for r, _ in _registries(section)))
    if cache_key in _FULL:
        return _FULL[cache_key]
    own = {f.name for f in dataclasses.fields(section)}
    added: dict[str, tuple[Any, Any, type]] = {}  # key -> (type, default, owner)
    extra: list[tuple[str, Any, dataclasses.Field]] = []
    flat_owners: list[type] = []
    for pcfg, how, sub_key in _plugin_configs(section):
        if how == "nested":
            specs = [(sub_key, pcfg, dataclasses.field(default_factory=pcfg), (pcfg, None))]
        else:
            flat_owners.append(pcfg)
            hints = typing.get_type_hints(pcfg)
            specs = [(f.name, hints[f.name],
                      dataclasses.field(default=f.default, default_factory=f.default_factory),
                      (hints[f.name], _default(f))) for f in dataclasses.fields(pcfg)]
        for name, tp, fld, identity in specs:
            if name in own:
                raise TypeError(f"{pcfg.__qualname__}.{name}: already a key of {section.__name__}")
            if name in added:
                if added[name][:2] != identity:
                    raise TypeError(f"{pcfg.__qualname__}.{name} differs from {added[name][2].__qualname__}.{name}")
                continue
            added[name] = (*identity, pcfg)
            extra.append((name, tp, fld))

    def check(self, p: str) -> None:
        section.check(self, p)
        for pcfg in flat_owners:  # each flat plug-in checks its own keys (nested blocks check themselves)
            view = pcfg(**{f.name: getattr(self, f.name) for f in dataclasses.fields(pcfg)})
            if hasattr(view, "check"):
                view.check(p)

    qualname = f"_Full{section.__name__}"
    full = dataclasses.make_dataclass(section.__name__, extra, bases=(section,), namespace={
        "_plugin_full": True, "check": check, "__doc__": section.__doc__})
    full.__module__, full.__qualname__ = section.__module__, qualname
    _FULL[cache_key] = full
    return full


def plugins_of(cfg) -> list[Any]:
    """The plug-ins a run uses, in the order validation calls their ``check_run(cfg)``: the
    dataset, the prior, the metrics, then the architecture (so that a metric the data cannot
    serve, e.g. ``fid`` on vectors, is named rather than the default conv net's complaint)."""
    from harness.archs import ARCHS
    from harness.datasets import DATASETS
    from harness.evaluators import EVALUATORS
    from harness.priors import PRIORS

    return [DATASETS.get(cfg.data.name), PRIORS.get(cfg.model.prior),
            *(EVALUATORS.get(m) for m in dict.fromkeys(cfg.eval.metrics)), ARCHS.get(cfg.model.arch)]
