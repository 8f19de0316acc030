"""The one lens-driver interface, its status record and the driver registry.

Every driver commands a focus distance in metres and reports where the lens is. Drivers convert metres to their
native unit (mA, dioptres, V4L2 steps) themselves, usually through a :mod:`dfdnet_core.lens_calibration` table.

Contract shared by all drivers:

- ``open()`` connects and handshakes; it may be called again after a failure to reconnect.
- ``set_focus_m(focus_m)`` returns as soon as the device accepted the command (it does not wait for the lens to
  settle; callers wait ``default_settle_time_s``). A focus outside ``focus_range_m`` raises :class:`DriverError`.
- ``status()`` on a driver that is not open returns ``ok=False`` with ``message='not open'``; a communication
  failure raises :class:`DriverError` / :class:`DriverTimeoutError`.
- ``close()`` is idempotent.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from dfdnet_core.errors import ConfigError, DriverError


@dataclass(frozen=True)
class LensStatus:
    """Where the lens is, as the driver last knows it.

    Attributes:
        focus_m: focus distance in metres (``math.inf`` = infinity, NaN = unknown).
        power_diopt: the same as optical power in dioptres (1/focus_m; NaN = unknown).
        temperature_c: lens temperature in degrees Celsius, or None if the driver cannot read it.
        ok: False if the driver is not open or the device reported a fault.
        message: a short human-readable state ("ok", "not open", the fault).
    """

    focus_m: float
    power_diopt: float
    temperature_c: float | None
    ok: bool
    message: str


@runtime_checkable
class LensDriver(Protocol):
    """A lens whose focus can be commanded in metres.

    Attributes:
        name: registry name of the driver ("sim", "optotune", ...).
        focus_range_m: (nearest, farthest) reachable focus distance in metres; farthest may be ``math.inf``.
        default_settle_time_s: typical time from a command to a settled lens, in seconds.
    """

    name: str
    focus_range_m: tuple[float, float]
    default_settle_time_s: float

    def open(self) -> None:
        """Connect to the device and handshake.

        Raises:
            DriverError: the device is absent or does not answer as expected.
        """
        ...

    def set_focus_m(self, focus_m: float) -> None:
        """Command the lens to focus at ``focus_m`` metres; returns once the command is accepted.

        Raises:
            DriverError: not open, ``focus_m`` outside ``focus_range_m``, or the device refused the command.
            DriverTimeoutError: the device did not answer in time.
        """
        ...

    def status(self) -> LensStatus:
        """The lens state (focus in metres and dioptres, temperature in degrees Celsius).

        Raises:
            DriverError: the device could not be read.
        """
        ...

    def close(self) -> None:
        """Release the device; safe to call twice."""
        ...


DriverFactory = Callable[..., LensDriver]
DRIVERS: dict[str, DriverFactory] = {}


def register_driver(name: str, factory: DriverFactory) -> None:
    """Add a driver factory to :data:`DRIVERS` under ``name`` (replaces an existing entry)."""
    DRIVERS[name] = factory


def make_driver(name: str, **options: Any) -> LensDriver:
    """Build the driver called ``name`` with its constructor options (not yet opened).

    Optional back ends (pyserial, linuxpy, picamera2) are imported only here, when asked for.

    Raises:
        ConfigError: ``name`` is not a known driver, an option name is not accepted, or a value is invalid.
        DriverError: the driver's Python package is not installed (the message names it).
    """
    try:
        factory = DRIVERS[name]
    except KeyError:
        raise ConfigError(f"unknown lens driver {name!r}; known: {sorted(DRIVERS)}") from None
    return factory(**options)


def check_focus_in_range(focus_m: float, focus_range_m: tuple[float, float], driver_name: str) -> None:
    """Reject a focus distance that is NaN, not positive or outside ``focus_range_m`` (metres).

    Raises:
        DriverError: the value cannot be commanded; the message quotes it and the range.
    """
    near_m, far_m = focus_range_m
    if math.isnan(focus_m) or focus_m <= 0 or not (near_m <= focus_m <= far_m):
        raise DriverError(
            f"{driver_name}: focus {focus_m!r} m is outside the reachable range [{near_m!r}, {far_m!r}] m"
        )


def validate_focus_range_m(focus_range_m: tuple[float, float], driver_name: str) -> tuple[float, float]:
    """Check a (near, far) focus range in metres and return it as a tuple of floats.

    Raises:
        ConfigError: not two numbers with 0 < near < far (far may be ``math.inf``).
    """
    try:
        near_m, far_m = (float(v) for v in focus_range_m)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{driver_name}: focus_range_m must be two numbers (near, far) in metres, got {focus_range_m!r}"
        ) from None
    if not (math.isfinite(near_m) and near_m > 0 and far_m > near_m):
        raise ConfigError(
            f"{driver_name}: focus_range_m needs 0 < near < far (far may be inf), got {focus_range_m!r}"
        )
    return near_m, far_m


def power_diopt_of(focus_m: float) -> float:
    """Optical power in dioptres of a focus distance in metres (0 for infinity, NaN for NaN)."""
    if math.isnan(focus_m):
        return math.nan
    return 0.0 if math.isinf(focus_m) else 1.0 / focus_m


def construct_driver(driver_class: Callable[..., LensDriver], name: str, options: dict[str, Any]) -> LensDriver:
    """``driver_class(**options)``, rejecting option names the constructor does not take.

    Raises:
        ConfigError: an unknown option; the message lists the accepted ones.
    """
    accepted = [
        p.name for p in inspect.signature(driver_class).parameters.values()
        if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(f"lens driver {name!r} has no option(s) {unknown}; accepted: {accepted}")
    return driver_class(**options)


def _make_sim(**options: Any) -> LensDriver:
    from dfdnet_core.drivers.driver_sim import SimLensDriver

    return construct_driver(SimLensDriver, "sim", options)


def _make_optotune(**options: Any) -> LensDriver:
    from dfdnet_core.drivers.driver_optotune import OptotuneLensDriver

    return construct_driver(OptotuneLensDriver, "optotune", options)


def _make_v4l2(**options: Any) -> LensDriver:
    from dfdnet_core.drivers.driver_v4l2 import V4l2LensDriver

    return construct_driver(V4l2LensDriver, "v4l2", options)


def _make_libcamera(**options: Any) -> LensDriver:
    from dfdnet_core.drivers.driver_libcamera import LibcameraLensDriver

    return construct_driver(LibcameraLensDriver, "libcamera", options)


register_driver("sim", _make_sim)
register_driver("optotune", _make_optotune)
register_driver("v4l2", _make_v4l2)
register_driver("libcamera", _make_libcamera)
