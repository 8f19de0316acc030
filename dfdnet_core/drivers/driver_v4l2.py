"""V4L2 ``focus_absolute`` lens driver (UVC webcams, voice-coil camera modules), via linuxpy.

The kernel control ``V4L2_CID_FOCUS_ABSOLUTE`` is unitless ("steps"; the kernel documentation says positive
values move the focus closer, but cameras differ), so a calibration from steps to metres is required
(:mod:`dfdnet_core.lens_calibration`, unit "step"). On ``open()`` continuous autofocus
(``focus_automatic_continuous``, or the older ``focus_auto``) is switched off, otherwise the camera ignores or
overrides ``focus_absolute``.

Device access goes through a small :class:`V4l2ControlBackend` so that the driver is tested with a fake backend;
the real one (:class:`LinuxpyControlBackend`) uses ``linuxpy.video.device.Device``, whose controls are looked up
by their configuration names ("focus_absolute", ...).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Protocol

from dfdnet_core.drivers.driver import (
    LensStatus,
    check_focus_in_range,
    power_diopt_of,
    validate_focus_range_m,
)
from dfdnet_core.errors import ConfigError, DriverError
from dfdnet_core.lens_calibration import CalibrationError, LensCalibration, load_calibration

FOCUS_CONTROL = "focus_absolute"
AUTOFOCUS_CONTROLS = ("focus_automatic_continuous", "focus_auto")


@dataclass(frozen=True)
class ControlInfo:
    """Range of an integer V4L2 control (unitless)."""

    minimum: int
    maximum: int
    step: int
    default: int


class V4l2ControlBackend(Protocol):
    """Read and write V4L2 controls by name."""

    def has(self, name: str) -> bool:
        """Whether the device has control ``name``."""
        ...

    def info(self, name: str) -> ControlInfo:
        """Range of integer control ``name``."""
        ...

    def get(self, name: str) -> int:
        """Current value of control ``name``."""
        ...

    def set(self, name: str, value: int) -> None:
        """Write ``value`` to control ``name``."""
        ...

    def close(self) -> None:
        """Release the device."""
        ...


def _require_linuxpy() -> Any:
    try:
        from linuxpy.video import device as linuxpy_device
    except ImportError:
        raise DriverError(
            "v4l2: the 'linuxpy' package is not installed; install it with 'pip install linuxpy' "
            "(or pass a control backend)"
        ) from None
    return linuxpy_device


class LinuxpyControlBackend:
    """V4L2 controls of ``device_path`` through linuxpy.

    Raises:
        DriverError: linuxpy is missing or the device cannot be opened.
    """

    def __init__(self, device_path: str) -> None:
        linuxpy_device = _require_linuxpy()
        try:
            self._device = linuxpy_device.Device(device_path)
            self._device.open()
        except OSError as exc:
            raise DriverError(f"v4l2: cannot open {device_path!r}: {exc}") from exc
        self._path = device_path

    def _control(self, name: str) -> Any:
        try:
            return self._device.controls[name]
        except KeyError:
            raise DriverError(f"v4l2: {self._path!r} has no control {name!r}") from None

    def has(self, name: str) -> bool:
        try:
            self._device.controls[name]
        except KeyError:
            return False
        return True

    def info(self, name: str) -> ControlInfo:
        control = self._control(name)
        return ControlInfo(int(control.minimum), int(control.maximum), int(control.step), int(control.default))

    def get(self, name: str) -> int:
        try:
            return int(self._control(name).value)
        except OSError as exc:
            raise DriverError(f"v4l2: reading {name!r} on {self._path!r} failed: {exc}") from exc

    def set(self, name: str, value: int) -> None:
        try:
            self._control(name).value = value
        except (OSError, AttributeError, ValueError) as exc:
            raise DriverError(f"v4l2: writing {name}={value!r} on {self._path!r} failed: {exc}") from exc

    def close(self) -> None:
        self._device.close()


class V4l2LensDriver:
    """A V4L2 camera's focus motor, commanded in metres through a steps calibration.

    Args:
        device: V4L2 device path ("/dev/video0").
        calibration_path: YAML calibration in unit "step" (required unless ``calibration`` is given).
        calibration: the same as an object.
        focus_range_m: (near, far) metres to allow; None or empty = the calibrated range. ``open()`` narrows it to the
            steps the control accepts.
        settle_time_s: reported as ``default_settle_time_s`` (voice-coil modules settle in 30-100 ms).
        backend: control backend, owned by the caller; None = :class:`LinuxpyControlBackend` on ``device``
            (needs linuxpy), opened in ``open()`` and closed in ``close()``.

    Raises:
        ConfigError: no calibration, a calibration not in steps, or an invalid option.
        DriverError: ``backend`` is None and linuxpy is not installed.
    """

    name = "v4l2"

    def __init__(
        self,
        device: str = "/dev/video0",
        calibration_path: str = "",
        calibration: LensCalibration | None = None,
        focus_range_m: tuple[float, float] | None = None,
        settle_time_s: float = 0.1,
        backend: V4l2ControlBackend | None = None,
    ) -> None:
        if calibration_path and calibration is not None:
            raise ConfigError("v4l2: give calibration_path or calibration, not both")
        if calibration_path:
            try:
                calibration = load_calibration(calibration_path)
            except CalibrationError as exc:
                raise ConfigError(f"v4l2: {exc}") from None
        if calibration is None:
            raise ConfigError(
                "v4l2: focus_absolute is unitless; a calibration in 'step' is required (calibration_path)"
            )
        if calibration.unit_name != "step":
            raise ConfigError(
                f"v4l2: the calibration must be in 'step', got {calibration.unit_name!r} "
                f"({calibration_path or 'calibration object'})"
            )
        if not (math.isfinite(settle_time_s) and settle_time_s >= 0):
            raise ConfigError(f"v4l2: settle_time_s must be >= 0 seconds, got {settle_time_s!r}")
        if backend is None:
            _require_linuxpy()
        self.device = device
        self.calibration = calibration
        self._configured_range_m = validate_focus_range_m(
            focus_range_m if focus_range_m else calibration.focus_range_m, self.name
        )
        self.focus_range_m = self._configured_range_m
        self.default_settle_time_s = float(settle_time_s)
        self._given_backend = backend
        self._backend: V4l2ControlBackend | None = None
        self._info: ControlInfo | None = None

    def open(self) -> None:
        """Open the device, turn continuous autofocus off and read the focus_absolute range.

        Raises:
            DriverError: the device cannot be opened or has no focus_absolute control, or the control's range
                does not overlap the calibration.
        """
        self.close()
        backend = self._given_backend or LinuxpyControlBackend(self.device)
        try:
            if not backend.has(FOCUS_CONTROL):
                raise DriverError(f"v4l2: {self.device!r} has no {FOCUS_CONTROL!r} control (fixed-focus camera?)")
            for name in AUTOFOCUS_CONTROLS:
                if backend.has(name):
                    backend.set(name, 0)
            info = backend.info(FOCUS_CONTROL)
            low = max(float(info.minimum), self.calibration.unit_range[0])
            high = min(float(info.maximum), self.calibration.unit_range[1])
            if low > high:
                raise DriverError(
                    f"v4l2: {FOCUS_CONTROL} range [{info.minimum}, {info.maximum}] on {self.device!r} does not "
                    f"overlap the calibrated steps {self.calibration.unit_range!r}"
                )
            ends_m = sorted(self.calibration.focus_m_from_unit(v) for v in (low, high))
            self.focus_range_m = (
                max(self._configured_range_m[0], ends_m[0]),
                min(self._configured_range_m[1], ends_m[1]),
            )
        except DriverError:
            if backend is not self._given_backend:
                backend.close()
            raise
        self._backend, self._info = backend, info

    def step_for_focus_m(self, focus_m: float) -> int:
        """The focus_absolute value (steps, on the control's grid) that focuses closest to ``focus_m`` metres.

        Raises:
            DriverError: not open, or ``focus_m`` outside ``focus_range_m``.
        """
        if self._info is None:
            raise DriverError("v4l2: not open")
        check_focus_in_range(focus_m, self.focus_range_m, self.name)
        try:
            value = self.calibration.unit_from_focus_m(focus_m)
        except CalibrationError as exc:
            raise DriverError(f"v4l2: {exc}") from None
        info = self._info
        grid = max(info.step, 1)
        step = info.minimum + round((value - info.minimum) / grid) * grid
        return min(max(step, info.minimum), info.maximum)

    def set_focus_m(self, focus_m: float) -> None:
        """Write the focus_absolute value for ``focus_m`` metres.

        Raises:
            DriverError: not open, out of range, or the ioctl failed.
        """
        if self._backend is None:
            raise DriverError("v4l2: set_focus_m called before open()")
        self._backend.set(FOCUS_CONTROL, self.step_for_focus_m(focus_m))

    def status(self) -> LensStatus:
        """Focus read back from focus_absolute, through the calibration; temperature is not available.

        Raises:
            DriverError: reading the control failed.
        """
        if self._backend is None:
            return LensStatus(math.nan, math.nan, None, False, "not open")
        step = self._backend.get(FOCUS_CONTROL)
        try:
            focus_m = self.calibration.focus_m_from_unit(float(step))
        except CalibrationError:
            return LensStatus(math.nan, math.nan, None, False, f"{FOCUS_CONTROL}={step} is outside the calibration")
        return LensStatus(focus_m, power_diopt_of(focus_m), None, True, "ok")

    def close(self) -> None:
        """Release the device (a backend passed in stays open: its owner closes it)."""
        if self._backend is not None and self._backend is not self._given_backend:
            self._backend.close()
        self._backend, self._info = None, None
