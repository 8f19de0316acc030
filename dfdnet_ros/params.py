"""ROS parameters from dfdnet_core's frozen config dataclasses: one field = one parameter of the same name.

Defaults live only in the dataclass; a field's metadata gives the descriptor (``description`` with its unit,
``range`` = (min, max, step), ``choices`` for strings, ``read_only``). Values are validated by the dataclass itself,
so a bad parameter file fails the node at start with the dataclass's message; live changes are validated the same
way in an on-set callback that returns the reason.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, TypeVar

from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor, SetParametersResult
from rclpy.node import Node
from rclpy.parameter import Parameter

from dfdnet_core.config import config_from_mapping
from dfdnet_core.errors import ConfigError

T = TypeVar("T")


def _descriptor(f: dataclasses.Field, read_only: bool) -> ParameterDescriptor:
    meta = f.metadata
    desc = ParameterDescriptor(
        description=str(meta.get("description", "")), read_only=bool(meta.get("read_only", read_only))
    )
    if "choices" in meta:
        desc.additional_constraints = "one of: " + ", ".join(map(str, meta["choices"]))
    if "range" in meta:
        low, high, step = meta["range"]
        if isinstance(low, int) and isinstance(high, int) and isinstance(step, int):
            desc.integer_range = [IntegerRange(from_value=low, to_value=high, step=step)]
        else:
            desc.floating_point_range = [
                FloatingPointRange(from_value=float(low), to_value=float(high), step=float(step))
            ]
    return desc


def _ros_value(value: Any) -> Any:
    """Dataclass default as a ROS parameter value (tuples become lists)."""
    if isinstance(value, tuple):
        return list(value)
    return value


def declare_config(node: Node, cls: type[T], *, read_only: bool = True, **fixed: Any) -> T:
    """Declare one parameter per field of ``cls`` on ``node`` and build ``cls`` from their values.

    Args:
        node: the node that owns the parameters.
        cls: a frozen dataclass of dfdnet_core.
        read_only: default descriptor flag (fields may override with metadata ``read_only``).
        fixed: field values the node sets itself (not declared as parameters).

    Raises:
        ConfigError: the parameters do not form a valid ``cls`` (the node should not start).
    """
    values: dict[str, Any] = dict(fixed)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if f.name in fixed:
            continue
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        else:
            raise ConfigError(f"{cls.__name__}.{f.name} has no default; cannot declare it as a parameter")
        descriptor = _descriptor(f, read_only)
        if default is None:
            descriptor.dynamic_typing = True
            param = node.declare_parameter(f.name, None, descriptor)
        else:
            if isinstance(default, float) and math.isinf(default):
                descriptor.floating_point_range = []
            param = node.declare_parameter(f.name, _ros_value(default), descriptor)
        value = param.value
        values[f.name] = tuple(value) if isinstance(default, tuple) and value is not None else value
    return config_from_mapping(cls, values, source=f"node {node.get_name()!r} parameters")


def validate_changes_with(node: Node, cls: type[T], current: Callable[[], T], apply: Callable[[T], None]) -> None:
    """Validate live parameter changes by rebuilding ``cls``; apply it when valid, else return the reason."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]

    def on_set(params: list[Parameter]) -> SetParametersResult:
        values = dataclasses.asdict(current())  # type: ignore[call-overload]
        for p in params:
            if p.name in names:
                values[p.name] = tuple(p.value) if isinstance(values[p.name], tuple) else p.value
        try:
            config = config_from_mapping(cls, values, source=f"node {node.get_name()!r}")
        except ConfigError as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        apply(config)
        return SetParametersResult(successful=True)

    node.add_on_set_parameters_callback(on_set)
