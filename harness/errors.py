"""The one-line configuration error and its two helpers (imported by every plug-in).

Kept apart from :mod:`harness.config` so that a plug-in module (a regularizer, dataset,
architecture, evaluator or prior) can raise a :class:`ConfigError` without importing the
config module, which itself imports the plug-in registries: no import cycle.
Command-line entry points print ``error: <message>`` and exit with status 2.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness.registry import suggest


class ConfigError(ValueError):
    """A bad configuration value; ``str(err)`` is one line naming key and allowed values."""

    def __init__(self, key: str, message: str, source: str | None = None):
        self.key, self.message, self.source = key, message, source
        super().__init__(self._text())

    def _text(self) -> str:
        prefix = f"{self.source}: " if self.source else ""
        return f"{prefix}{self.key}: {self.message}" if self.key else f"{prefix}{self.message}"

    def with_source(self, source: str) -> "ConfigError":
        return ConfigError(self.key, self.message, source)


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    """Raise a ConfigError for ``key`` unless ``ok``."""
    if not ok:
        raise ConfigError(key, f"got {value!r}; allowed: {allowed}")


def require_choice(value: Any, key: str, choices: list[str]) -> None:
    """Raise a ConfigError (with a "did you mean") unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ConfigError(
            key, f"got {value!r}{suggest(value, choices)}; allowed: {', '.join(choices)}"
        )


class CommandLine(argparse.ArgumentParser):
    """``argparse`` whose usage errors are one line, like every other error of the harness:
    ``error: <prog>: <what argparse says> (see <prog> --help)``, exit status 2 (argparse
    itself prints the whole usage block first)."""

    def error(self, message: str):
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")
