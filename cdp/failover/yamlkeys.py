"""Typed access to decoded YAML that names the key path of every bad value.

A :class:`Section` wraps one mapping and the path that leads to it (``groups[0].vms[1]``);
its getters check type and range and raise :class:`cdp.errors.ConfigError` naming the
full key path. :class:`UniqueKeyLoader` rejects a key given twice (plain YAML keeps the
last one silently, which in a recovery plan hides mistakes). Pure: no file access.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from cdp.errors import ConfigError


class UniqueKeyLoader(yaml.SafeLoader):
    """A YAML loader that rejects a key given twice (YAML would keep the last silently)."""


def _construct_mapping(loader: UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise ConfigError(str(key), f"given twice (line {key_node.start_mark.line + 1})")
        seen.add(key)
    return dict(loader.construct_mapping(node))


UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_mapping,
)


_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,63}")
"""A cdp name (group, VM, plan): also a safe file name."""
MISSING: Any = object()
"""Marks a required key (no default)."""


class Section:
    """A YAML mapping with the key path that leads to it; typed getters that name keys."""

    def __init__(self, data: object, path: str) -> None:
        if not isinstance(data, dict):
            raise ConfigError(path or "plan", f"must be a mapping, not {_kind(data)}")
        self.data: dict[Any, Any] = data
        self.path = path

    def key(self, name: str) -> str:
        """The full key path of ``name``."""
        return f"{self.path}.{name}" if self.path else name

    def allow(self, *names: str) -> None:
        """Reject keys this section does not know (typos must not pass silently)."""
        for k in self.data:
            if k not in names:
                raise ConfigError(
                    self.key(str(k)), f"unknown key; expected one of {', '.join(names)}"
                )

    def _get(self, name: str, kind: type | tuple[type, ...], default: Any, label: str) -> Any:
        value = self.data.get(name, MISSING)
        if value is MISSING or value is None:
            if default is MISSING:
                raise ConfigError(self.key(name), "required")
            return default
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ConfigError(self.key(name), f"must be {label}, not {_kind(value)}")
        return value

    def string(self, name: str, default: str = MISSING, required: bool = False) -> str:
        """A non-empty string."""
        value: str = self._get(name, str, MISSING if required else default, "a string")
        if required and not value.strip():
            raise ConfigError(self.key(name), "must not be empty")
        return value

    def name(self, name: str) -> str:
        """A required cdp name: 1-64 of [A-Za-z0-9._-], no leading . or -."""
        value = self.string(name, required=True)
        if not _NAME.fullmatch(value):
            raise ConfigError(self.key(name), f"{value!r} is not 1-64 characters of [A-Za-z0-9._-]")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        """One of ``choices``."""
        value = self.string(name, default=default)
        if value not in choices:
            raise ConfigError(self.key(name), f"{value!r} is not one of {', '.join(choices)}")
        return value

    def boolean(self, name: str, default: bool) -> bool:
        """A YAML boolean (true or false)."""
        value: bool = self._get(name, bool, default, "true or false")
        return value

    def integer(
        self,
        name: str,
        default: int = MISSING,
        required: bool = False,
        low: int = 0,
        high: int = 2**63 - 1,
    ) -> int:
        """An integer in [low, high]."""
        value: int = self._get(name, int, MISSING if required else default, "an integer")
        _bounded(self.key(name), value, low, high)
        return value

    def number(self, name: str, default: float, low: float = 0.0, high: float = 1e12) -> float:
        """A number (int or float) in [low, high]; units are in the key's name."""
        value = float(self._get(name, (int, float), default, "a number"))
        _bounded(self.key(name), value, low, high)
        return value

    def child(self, name: str, required: bool = True) -> Any:
        """A nested mapping (None when absent and not required)."""
        if name not in self.data or self.data[name] is None:
            if required:
                raise ConfigError(self.key(name), "required")
            return None
        return Section(self.data[name], self.key(name))

    def section(self, name: str) -> Section:
        """A nested mapping whose keys all have defaults (empty when absent)."""
        value = self.data.get(name)
        return Section({} if value is None else value, self.key(name))

    def sequence(self, name: str, required: bool) -> list[Section]:
        """A list of mappings."""
        return [
            Section(item, f"{self.key(name)}[{i}]")
            for i, item in enumerate(self._list(name, required))
        ]

    def strings(self, name: str) -> list[str]:
        """A list of non-empty strings (empty list when absent)."""
        items = self._list(name, False)
        for i, item in enumerate(items):
            if not isinstance(item, str) or not item:
                raise ConfigError(f"{self.key(name)}[{i}]", f"must be a string, not {_kind(item)}")
        return items

    def _list(self, name: str, required: bool) -> list[Any]:
        value: list[Any] = self._get(name, list, MISSING if required else [], "a list")
        return value


def _bounded(key: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ConfigError(key, f"{value:g} is outside {low:g}..{high:g}")


def _kind(value: object) -> str:
    names: dict[type, str] = {dict: "a mapping", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "empty"
    return names.get(type(value), type(value).__name__)
