"""The one config loader: YAML or mappings into frozen dataclasses, unknown keys rejected.

Node configs use the ROS 2 parameter-file layout, so the same YAML serves ``ros2 launch`` and ``dfdnet run``::

    focus_sweep_controller:
      ros__parameters:
        near_m: 0.4

Each ROS parameter maps 1:1 to a dataclass field of the same name; defaults live only in the dataclasses.
Field metadata may carry ``description`` (with the unit) and ``range`` = (min, max, step) for the ROS descriptor.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

from dfdnet_core.errors import ConfigError

T = TypeVar("T")


def config_from_mapping(cls: type[T], values: Mapping[str, Any], *, source: str = "config") -> T:
    """Build the frozen dataclass ``cls`` from ``values``; missing keys keep their defaults.

    Raises:
        ConfigError: a key is not a field of ``cls``, a value has the wrong type, or validation fails.
    """
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(f"{source}: unknown key(s) {unknown} for {cls.__name__}; known keys: {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {name: _coerce(value, hints[name], f"{source}: {name}") for name, value in values.items()}
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: {exc}") from exc


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Raises:
        ConfigError: the file is missing, not YAML, or not a mapping at the top level.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read config file {str(path)!r}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {str(path)!r} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r} must hold a mapping, got {type(data).__name__}")
    return data


def node_parameters(params_file: Mapping[str, Any], node_name: str) -> dict[str, Any]:
    """The ``ros__parameters`` of ``node_name`` in a ROS 2 parameter file (wildcard ``/**`` merged first)."""
    merged: dict[str, Any] = {}
    for key in ("/**", node_name, "/" + node_name):
        section = params_file.get(key)
        if isinstance(section, Mapping):
            merged.update(section.get("ros__parameters", {}) or {})
    return merged


def load_node_config(cls: type[T], path: str | Path | None, node_name: str, **overrides: Any) -> T:
    """``cls`` from the ``node_name`` section of a ROS 2 parameter file, then ``overrides``."""
    values = node_parameters(load_yaml(path), node_name) if path is not None else {}
    values.update(overrides)
    return config_from_mapping(cls, values, source=f"{path or 'defaults'} [{node_name}]")


def parse_key_values(pairs: Sequence[str], what: str = "option") -> dict[str, Any]:
    """``key=value`` command-line pairs as a dict, values parsed as YAML (``max_side_px=640``, ``ids=[0,2]``).

    Raises:
        ConfigError: a pair without ``=`` or without a key (the message names it as ``what``).
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"{what} {pair!r} is not key=value")
        options[key] = yaml.safe_load(value)
    return options


def field_description(cls: type, name: str) -> str:
    """The ``description`` metadata of a dataclass field ('' when absent)."""
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name == name:
            return str(f.metadata.get("description", ""))
    raise KeyError(name)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Accept YAML/ROS scalars for the annotated type (ints for floats, lists for tuples, '.inf')."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        non_none = [a for a in args if a is not type(None)]
        return _coerce(value, non_none[0], where) if len(non_none) == 1 else value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise ConfigError(f"{where} must be a number, got {value!r}")
        try:
            return float(value)
        except ValueError:
            raise ConfigError(f"{where} must be a number, got {value!r}") from None
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(f"{where} must be an integer, got {value!r}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where} must be true or false, got {value!r}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where} must be a string, got {value!r}")
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0], where) for v in value)
        if len(value) != len(args):
            raise ConfigError(f"{where} must have {len(args)} entries, got {value!r}")
        return tuple(_coerce(v, a, where) for v, a in zip(value, args))
    return value


def is_finite_positive(value: float) -> bool:
    """True for a finite number > 0."""
    return math.isfinite(value) and value > 0
