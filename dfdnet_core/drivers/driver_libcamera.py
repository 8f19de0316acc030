"""libcamera ``LensPosition`` lens driver (Raspberry Pi camera modules with a focus motor), via picamera2.

libcamera's ``LensPosition`` control is in dioptres (1/m; 0 = infinity) as estimated by the camera's tuning file,
and is honoured only with ``AfMode`` set to manual (``controls::AfModeManual`` = 0). The tuning is nominal, so an
optional calibration in unit "diopt" maps the control value to the measured focus distance; without it the control
value is taken at its word (focus power in dioptres = LensPosition).

picamera2 is imported only when the driver has to create the camera itself. Where the camera node already owns a
``Picamera2`` in the same process, pass it as ``camera``: a camera can be opened by one owner only. The mapping
functions below need neither package.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from dfdnet_core.drivers.driver import (
    LensStatus,
    check_focus_in_range,
    power_diopt_of,
    validate_focus_range_m,
)
from dfdnet_core.errors import ConfigError, DriverError
from dfdnet_core.lens_calibration import CalibrationError, LensCalibration, load_calibration

AF_MODE_MANUAL = 0  # libcamera controls::AfModeManual


class LibcameraCamera(Protocol):
    """The part of ``picamera2.Picamera2`` the driver uses."""

    camera_controls: dict[str, Any]

    def set_controls(self, controls: dict[str, Any]) -> None: ...


def lens_position_from_focus_m(focus_m: float, calibration: LensCalibration | None = None) -> float:
    """libcamera LensPosition (dioptres) that focuses at ``focus_m`` metres (``math.inf`` -> 0).

    Raises:
        DriverError: ``focus_m`` is not positive, or outside the calibration.
    """
    if math.isnan(focus_m) or focus_m <= 0:
        raise DriverError(f"libcamera: focus distance must be > 0 m, got {focus_m!r}")
    if calibration is None:
        return power_diopt_of(focus_m)
    try:
        return calibration.unit_from_focus_m(focus_m)
    except CalibrationError as exc:
        raise DriverError(f"libcamera: {exc}") from None


def focus_m_from_lens_position(lens_position_diopt: float, calibration: LensCalibration | None = None) -> float:
    """Focus distance in metres for a libcamera LensPosition in dioptres (0 or less -> ``math.inf``).

    Raises:
        DriverError: the value is outside the calibration.
    """
    if calibration is None:
        return math.inf if lens_position_diopt <= 0 else 1.0 / lens_position_diopt
    try:
        return calibration.focus_m_from_unit(lens_position_diopt)
    except CalibrationError as exc:
        raise DriverError(f"libcamera: {exc}") from None


def _manual_af_mode() -> Any:
    try:
        from libcamera import controls
    except ImportError:
        return AF_MODE_MANUAL
    return controls.AfModeEnum.Manual


class LibcameraLensDriver:
    """A libcamera camera's focus lens, commanded in metres through ``LensPosition``.

    Args:
        camera_num: libcamera camera index, used when the driver creates the camera.
        calibration_path: optional YAML calibration in unit "diopt" (LensPosition -> focus distance); "" = none.
        calibration: the same as an object.
        focus_range_m: (near, far) metres to allow; None or empty = the calibrated range or (0.05, inf).
            ``open()`` narrows it to the LensPosition range the camera advertises.
        settle_time_s: reported as ``default_settle_time_s`` (seconds; the request takes effect a few frames
            later, so this is larger than the motor's own settling).
        camera: an already started ``Picamera2`` (or anything with ``camera_controls`` and ``set_controls``);
            None = create and start ``Picamera2(camera_num)`` in ``open()``.

    Raises:
        ConfigError: a calibration not in dioptres, or an invalid option.
        DriverError: ``camera`` is None and picamera2 is not installed.
    """

    name = "libcamera"

    def __init__(
        self,
        camera_num: int = 0,
        calibration_path: str = "",
        calibration: LensCalibration | None = None,
        focus_range_m: tuple[float, float] | None = None,
        settle_time_s: float = 0.1,
        camera: LibcameraCamera | None = None,
    ) -> None:
        if calibration_path and calibration is not None:
            raise ConfigError("libcamera: give calibration_path or calibration, not both")
        if calibration_path:
            try:
                calibration = load_calibration(calibration_path)
            except CalibrationError as exc:
                raise ConfigError(f"libcamera: {exc}") from None
        if calibration is not None and calibration.unit_name != "diopt":
            raise ConfigError(
                f"libcamera: the calibration must be in 'diopt' (LensPosition), got {calibration.unit_name!r} "
                f"({calibration_path or 'calibration object'})"
            )
        if not (math.isfinite(settle_time_s) and settle_time_s >= 0):
            raise ConfigError(f"libcamera: settle_time_s must be >= 0 seconds, got {settle_time_s!r}")
        if camera is None:
            _require_picamera2()
        if not focus_range_m:  # None or [] (a ROS parameter cannot be None)
            focus_range_m = calibration.focus_range_m if calibration is not None else (0.05, math.inf)
        self.camera_num = camera_num
        self.calibration = calibration
        self._configured_range_m = validate_focus_range_m(focus_range_m, self.name)
        self.focus_range_m = self._configured_range_m
        self.default_settle_time_s = float(settle_time_s)
        self._given_camera = camera
        self._camera: Any = None
        self._owns_camera = False
        self._lens_position_diopt = math.nan
        self._lens_range_diopt = (math.nan, math.nan)

    def open(self) -> None:
        """Get the camera, switch autofocus to manual and read the LensPosition range.

        Raises:
            DriverError: the camera cannot be started or has no LensPosition control.
        """
        self.close()
        camera: Any = self._given_camera
        if camera is None:
            picamera2 = _require_picamera2()
            try:
                camera = picamera2.Picamera2(self.camera_num)
                camera.start()
            except (RuntimeError, IndexError, OSError) as exc:
                raise DriverError(f"libcamera: cannot start camera {self.camera_num}: {exc}") from exc
            self._owns_camera = True
        try:
            limits = camera.camera_controls.get("LensPosition")
            if limits is None:
                raise DriverError("libcamera: the camera has no LensPosition control (fixed-focus module?)")
            low, high = float(limits[0]), float(limits[1])
            ends_m = sorted(self._focus_m_clamped(v) for v in (low, high))
            self.focus_range_m = (
                max(self._configured_range_m[0], ends_m[0]),
                min(self._configured_range_m[1], ends_m[1]),
            )
            if not self.focus_range_m[0] < self.focus_range_m[1]:
                raise DriverError(
                    f"libcamera: LensPosition range [{low}, {high}] dpt does not overlap focus_range_m "
                    f"{self._configured_range_m!r}"
                )
            camera.set_controls({"AfMode": _manual_af_mode()})
        except (DriverError, RuntimeError) as exc:
            if self._owns_camera:
                camera.close()
                self._owns_camera = False
            if isinstance(exc, DriverError):
                raise
            raise DriverError(f"libcamera: setting AfMode failed: {exc}") from exc
        self._camera = camera
        self._lens_range_diopt = (low, high)

    def _focus_m_clamped(self, lens_position_diopt: float) -> float:
        """Focus in metres for an end of the control range, clamped into the calibration."""
        if self.calibration is not None:
            u_low, u_high = self.calibration.unit_range
            lens_position_diopt = min(max(lens_position_diopt, u_low), u_high)
        return focus_m_from_lens_position(lens_position_diopt, self.calibration)

    def set_focus_m(self, focus_m: float) -> None:
        """Request LensPosition for ``focus_m`` metres (applied with the next frames).

        Raises:
            DriverError: not open, out of range, or picamera2 refused the control.
        """
        if self._camera is None:
            raise DriverError("libcamera: set_focus_m called before open()")
        check_focus_in_range(focus_m, self.focus_range_m, self.name)
        value = lens_position_from_focus_m(focus_m, self.calibration)
        low, high = self._lens_range_diopt
        value = min(max(value, low), high)  # only rounding can push it out: the range was checked above
        try:
            self._camera.set_controls({"LensPosition": value})
        except RuntimeError as exc:
            raise DriverError(f"libcamera: setting LensPosition={value!r} failed: {exc}") from exc
        self._lens_position_diopt = value

    def status(self) -> LensStatus:
        """The last requested focus (libcamera applies it a few frames later; no read-back); no temperature."""
        if self._camera is None:
            return LensStatus(math.nan, math.nan, None, False, "not open")
        if math.isnan(self._lens_position_diopt):
            return LensStatus(math.nan, math.nan, None, True, "no focus commanded yet")
        focus_m = focus_m_from_lens_position(self._lens_position_diopt, self.calibration)
        return LensStatus(focus_m, power_diopt_of(focus_m), None, True, "ok (last requested)")

    def close(self) -> None:
        """Release the camera if the driver created it."""
        if self._camera is not None and self._owns_camera:
            self._camera.close()
        self._camera, self._owns_camera = None, False
        self._lens_position_diopt = math.nan


def _require_picamera2() -> Any:
    try:
        import picamera2
    except ImportError:
        raise DriverError(
            "libcamera: the 'picamera2' package is not installed; install it with 'sudo apt install "
            "python3-picamera2' (Raspberry Pi OS) or 'pip install picamera2' (or pass a camera)"
        ) from None
    return picamera2
