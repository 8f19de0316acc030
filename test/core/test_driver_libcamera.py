"""Tests of the libcamera LensPosition driver's mapping and control flow with a fake camera (no picamera2)."""

from __future__ import annotations

import math
import sys
from typing import Any

import pytest

from dfdnet_core.drivers import make_driver
from dfdnet_core.drivers.driver_libcamera import (
    AF_MODE_MANUAL,
    LibcameraLensDriver,
    focus_m_from_lens_position,
    lens_position_from_focus_m,
)
from dfdnet_core.errors import ConfigError, DriverError
from dfdnet_core.lens_calibration import fit_calibration


class FakeCamera:
    def __init__(self, lens_range: tuple[float, float, float] | None = (0.0, 15.0, 1.0)) -> None:
        self.camera_controls: dict[str, Any] = {"AfMode": (0, 2, 0)}
        if lens_range is not None:
            self.camera_controls["LensPosition"] = lens_range
        self.requests: list[dict[str, Any]] = []

    def set_controls(self, controls: dict[str, Any]) -> None:
        self.requests.append(dict(controls))


def test_uncalibrated_mapping_is_dioptres() -> None:
    assert lens_position_from_focus_m(0.5) == pytest.approx(2.0)
    assert lens_position_from_focus_m(math.inf) == 0.0
    assert focus_m_from_lens_position(4.0) == pytest.approx(0.25)
    assert focus_m_from_lens_position(0.0) == math.inf
    with pytest.raises(DriverError, match=r"focus distance must be > 0 m, got -1\.0"):
        lens_position_from_focus_m(-1.0)


def test_calibrated_mapping_inverts_a_known_tuning_error() -> None:
    # The tuning overstates power: true focus power = 0.9 * LensPosition + 0.1 dpt.
    nominal = [0.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    calibration = fit_calibration("diopt", [(p, 1 / (0.9 * p + 0.1)) for p in nominal])
    for focus_m in (0.125, 0.3, 1.0, 5.0):
        position = lens_position_from_focus_m(focus_m, calibration)
        assert position == pytest.approx((1 / focus_m - 0.1) / 0.9, abs=1e-9)
        assert focus_m_from_lens_position(position, calibration) == pytest.approx(focus_m, rel=1e-9)
    with pytest.raises(DriverError, match="outside the calibrated range"):
        lens_position_from_focus_m(20.0, calibration)  # 0.05 dpt < the 0.1 dpt at LensPosition 0


def test_driver_sets_manual_af_then_lens_position() -> None:
    camera = FakeCamera()
    driver = make_driver("libcamera", camera=camera)
    assert isinstance(driver, LibcameraLensDriver)
    driver.open()
    assert camera.requests[0] == {"AfMode": driver_af_manual()}
    assert driver.focus_range_m == pytest.approx((1 / 15.0, math.inf))
    assert driver.status().message == "no focus commanded yet"
    driver.set_focus_m(0.25)
    assert camera.requests[-1] == {"LensPosition": pytest.approx(4.0)}
    status = driver.status()
    assert status.ok and status.focus_m == pytest.approx(0.25) and status.temperature_c is None
    with pytest.raises(DriverError, match=r"focus 0\.05 m is outside the reachable range"):
        driver.set_focus_m(0.05)
    driver.close()
    assert not driver.status().ok


def driver_af_manual() -> Any:
    try:
        from libcamera import controls  # type: ignore[import-not-found]
    except ImportError:
        return AF_MODE_MANUAL
    return controls.AfModeEnum.Manual


def test_fixed_focus_camera_is_a_driver_error() -> None:
    with pytest.raises(DriverError, match="no LensPosition control"):
        LibcameraLensDriver(camera=FakeCamera(lens_range=None)).open()


def test_calibration_must_be_in_dioptres() -> None:
    steps = fit_calibration("step", [(0, 2.0), (10, 1.0), (20, 0.5)])
    with pytest.raises(ConfigError, match="must be in 'diopt' \\(LensPosition\\), got 'step'"):
        LibcameraLensDriver(calibration=steps, camera=FakeCamera())


def test_libcamera_without_picamera2_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "picamera2", None)
    with pytest.raises(DriverError, match="'picamera2' package is not installed"):
        make_driver("libcamera")


def test_an_empty_focus_range_means_not_set() -> None:
    driver = LibcameraLensDriver(focus_range_m=[], camera=FakeCamera())  # type: ignore[arg-type]
    driver.open()
    assert driver.focus_range_m == pytest.approx((1 / 15.0, math.inf))
