"""The one way the harness reads YAML: run configs, sweep files, ``--set`` values.

``yaml.safe_load`` builds no Python objects, but it still trusts its input in ways a config
reader must not:

* **aliases** (``*name``) let a few hundred bytes expand into billions of nodes (the
  "billion laughs" bomb), which exhausts memory as soon as the tree is copied; configs and
  sweep files are written by hand and never need them, so an alias is refused (anchors
  alone are harmless and pass);
* **duplicate keys** silently keep the last value (a second ``grid:`` drops the first);
  here they are refused, naming the key and both lines;
* **size and nesting**: files above :data:`MAX_BYTES` and nesting deep enough to exhaust the
  parser's recursion are refused;
* **encoding**: a file that is not UTF-8 text (binary garbage) is refused with the byte
  offset instead of a ``UnicodeDecodeError`` traceback.

Every refusal is a :class:`YAMLInputError` whose ``str`` is one line; callers add the file
name (``harness.config.read_yaml`` turns it into a ``ConfigError``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

MAX_BYTES = 1_000_000  # a hand-written config or sweep file is a few kB


class YAMLInputError(ValueError):
    """Unreadable or refused YAML; ``str(err)`` is one line (with a line number if known)."""


class YAMLRefused(YAMLInputError):
    """Well-formed YAML that the harness refuses: an alias, a duplicate key, too large or deep."""


def _line(mark: Any) -> str:
    return f"line {mark.line + 1}: " if mark is not None else ""


class StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and duplicate mapping keys."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise YAMLRefused(f"{_line(event.start_mark)}YAML alias *{event.anchor} refused "
                                 "(aliases can expand without bound); write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            self.flatten_mapping(node)
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key; the base class reports it
                    continue
                if first is not None:
                    raise YAMLRefused(f"{_line(key_node.start_mark)}duplicate key {key!r} "
                                         f"(first at line {first.line + 1}); allowed: each key once")
                seen[key] = key_node.start_mark
        return super().construct_mapping(node, deep=deep)


def loads(text: str) -> Any:
    """Parse one YAML document with :class:`StrictLoader`; :class:`YAMLInputError` if bad."""
    if len(text) > MAX_BYTES:
        raise YAMLRefused(f"{len(text)} characters; allowed: at most {MAX_BYTES}")
    try:
        return yaml.load(text, Loader=StrictLoader)  # noqa: S506 - StrictLoader is a SafeLoader
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or " ".join(str(e).split())
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise YAMLInputError(f"not valid YAML ({where}{problem})") from None
    except RecursionError:
        raise YAMLRefused("nested too deeply; allowed: an ordinary config tree") from None


def load_file(path: str | Path) -> Any:
    """Read and parse a YAML file (size, encoding, aliases, duplicate keys checked)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise YAMLRefused(f"{size} bytes; allowed: a YAML file of at most {MAX_BYTES} bytes")
        data = path.read_bytes()
    except OSError as e:
        raise YAMLInputError(f"cannot read: {e.strerror or e}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YAMLInputError(f"not a UTF-8 text file (byte {e.start}); allowed: a YAML text file") from None
    return loads(text)
