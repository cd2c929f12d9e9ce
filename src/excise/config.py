"""Frozen pydantic configs, YAML in and out, dotted ``a.b=value`` overrides."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from excise.errors import ExciseError

C = TypeVar("C", bound="BaseConfig")


class BaseConfig(BaseModel):
    """Base of every config: frozen, unknown keys rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def save_yaml(self, path: str | Path) -> None:
        from excise.utils import atomic_write_text

        atomic_write_text(Path(path), self.to_yaml())


def format_validation_error(err: ValidationError, what: str = "config") -> str:
    """One line naming each offending key and why."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "<root>"
        if e["type"] == "extra_forbidden":
            parts.append(f"unknown key '{loc}'")
        else:
            parts.append(f"'{loc}': {e['msg']}")
    return f"invalid {what}: " + "; ".join(parts) + " (check the key names and types)"


def validate(cls: type[C], data: dict[str, Any], what: str | None = None) -> C:
    """Build a config from a dict, turning validation errors into ExciseError."""
    try:
        return cls.model_validate(data)
    except ValidationError as err:
        raise ExciseError(format_validation_error(err, what or cls.__name__)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ExciseError(f"config file not found: {p} (pass the path of an existing YAML file)")
    try:
        data = yaml.safe_load(p.read_text())
    except yaml.YAMLError as err:
        raise ExciseError(f"config file {p} is not valid YAML: {err}") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ExciseError(f"config file {p} must hold a mapping at the top level")
    return data


def load_yaml(cls: type[C], path: str | Path, overrides: list[str] | None = None) -> C:
    data = apply_overrides(read_yaml(path), overrides or [])
    return validate(cls, data, what=f"config {path}")


def parse_value(text: str) -> Any:
    """Parse an override value as YAML (numbers, booleans, lists), else keep the string."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def set_dotted(data: dict[str, Any], key: str, value: Any, what: str = "override") -> None:
    """Set ``data[a][b][0][c] = value`` for ``key = "a.b.0.c"``, in place.

    Missing mapping sections are created; a number addresses an item of an existing list (``-1`` the
    last one); anything else that cannot hold the key is an ExciseError naming the offending part.
    """
    parts = [p for p in key.strip().split(".") if p]
    if not parts:
        raise ExciseError(f"{what} '{key}' has an empty key")
    node: Any = data
    path: list[str] = []
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(path) or "the top level"
        if isinstance(node, list):
            try:
                idx = int(part)
            except ValueError:
                raise ExciseError(
                    f"{what} '{key}': '{where}' is a list; address its items by number, e.g. {where}.0"
                ) from None
            if not -len(node) <= idx < len(node):
                raise ExciseError(
                    f"{what} '{key}': '{where}' has {len(node)} item(s), so index {idx} does not exist"
                )
            if last:
                node[idx] = copy.deepcopy(value)
                return
            node = node[idx]
        elif isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
                return
            if node.get(part) is None:
                node[part] = {}
            node = node[part]
        else:
            raise ExciseError(f"{what} '{key}': '{where}' holds the value {node!r}, not a section or a list")
        path.append(part)


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with ``a.b.c=value`` overrides applied (``a.0.c`` indexes a list)."""
    out = copy.deepcopy(data)
    for item in overrides:
        if "=" not in item:
            raise ExciseError(f"override '{item}' must look like key.sub=value")
        key, _, raw = item.partition("=")
        set_dotted(out, key, parse_value(raw), what="override")
    return out
