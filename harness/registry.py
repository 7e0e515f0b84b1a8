"""Name -> factory registries with "did you mean" errors.

One registry per pluggable concept (regularizers, architectures, datasets, priors,
evaluators). A plug-in registers itself with a decorator in its own module, so adding one
needs no edit anywhere else; the package that holds the plug-ins imports all its modules.
A plug-in may own settings (a ``Config`` dataclass) and requirements on the rest of a run
(``check_run(cfg)``); :mod:`harness.plugin_settings` turns those into config keys.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Callable, Generic, Iterable, TypeVar

T = TypeVar("T")


def suggest(name: str, choices: Iterable[str]) -> str:
    """Return ' (did you mean 'x'?)' when a close match exists, else ''."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Registry(Generic[T]):
    """A named collection of plug-ins of one kind."""

    def __init__(self, kind: str, package: str | None = None):
        self.kind = kind
        self._package = package
        self._items: dict[str, T] = {}
        self._imported = package is None

    def register(self, name: str, **attributes) -> Callable[[T], T]:
        """Register the decorated object under ``name``. ``attributes`` are set on it: what a
        function plug-in (a dataset loader, an architecture builder) declares in the decorator
        (``Config``, ``check_run``, ``kind``) and a class plug-in holds as class attributes."""
        def decorator(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            for key, value in attributes.items():
                setattr(obj, key, value)
            self._items[name] = obj
            return obj

        return decorator

    def _ensure_imported(self) -> None:
        if self._imported:
            return
        self._imported = True
        package = importlib.import_module(self._package)
        for info in pkgutil.iter_modules(package.__path__):
            if not info.name.startswith("_"):
                importlib.import_module(f"{self._package}.{info.name}")

    def names(self) -> list[str]:
        self._ensure_imported()
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        self._ensure_imported()
        return name in self._items

    def get(self, name: str) -> T:
        self._ensure_imported()
        try:
            return self._items[name]
        except KeyError:
            raise KeyError(
                f"unknown {self.kind} '{name}'{suggest(name, self._items)}; "
                f"allowed: {', '.join(self.names())}"
            ) from None
