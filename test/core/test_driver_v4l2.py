"""Tests of the V4L2 focus_absolute driver against a fake control backend (no /dev/video)."""

from __future__ import annotations

import math
import sys

import pytest

from dfdnet_core.drivers import make_driver
from dfdnet_core.drivers.driver_v4l2 import ControlInfo, V4l2LensDriver
from dfdnet_core.errors import ConfigError, DriverError
from dfdnet_core.lens_calibration import LensCalibration, fit_calibration

# A voice-coil module: the lens moves 0.2 um per step away from the sensor's infinity position; thin lens with
# f = 4 mm gives focus power P(step) = 1/f - 1/(f + x), from 0 dpt (infinity) at step 0 to ~12.2 dpt at 1023.
F_M, UM_PER_STEP = 0.004, 0.2


def true_power_diopt(step: float) -> float:
    return 1 / F_M - 1 / (F_M + step * UM_PER_STEP * 1e-6)


def _calibration() -> LensCalibration:
    steps = [0, 64, 128, 256, 384, 512, 640, 768, 896, 1023]
    pairs = [(s, math.inf if s == 0 else 1 / true_power_diopt(s)) for s in steps]
    return fit_calibration("step", pairs)


class FakeBackend:
    def __init__(self, controls: dict[str, tuple[ControlInfo, int]]) -> None:
        self.info_by_name = {name: info for name, (info, _) in controls.items()}
        self.values = {name: value for name, (_, value) in controls.items()}
        self.writes: list[tuple[str, int]] = []
        self.closed = False

    def has(self, name: str) -> bool:
        return name in self.values

    def info(self, name: str) -> ControlInfo:
        return self.info_by_name[name]

    def get(self, name: str) -> int:
        return self.values[name]

    def set(self, name: str, value: int) -> None:
        info = self.info_by_name[name]
        if not info.minimum <= value <= info.maximum or (value - info.minimum) % info.step:
            raise DriverError(f"fake: {name}={value} invalid")
        self.writes.append((name, value))
        self.values[name] = value

    def close(self) -> None:
        self.closed = True


def _backend(step: int = 4, with_autofocus: bool = True) -> FakeBackend:
    controls = {"focus_absolute": (ControlInfo(0, 1020, step, 0), 0)}
    if with_autofocus:
        controls["focus_automatic_continuous"] = (ControlInfo(0, 1, 1, 1), 1)
    return FakeBackend(controls)


def test_open_turns_autofocus_off_and_sets_steps_for_metres() -> None:
    backend = _backend()
    driver = make_driver("v4l2", calibration=_calibration(), backend=backend)
    assert isinstance(driver, V4l2LensDriver)
    driver.open()
    assert backend.values["focus_automatic_continuous"] == 0
    assert backend.writes[0] == ("focus_automatic_continuous", 0)
    # The control stops at 1020 (< the calibrated 1023): the near limit is the focus at step 1020.
    assert driver.focus_range_m[0] == pytest.approx(1 / true_power_diopt(1020), rel=1e-3)
    assert driver.focus_range_m[1] == math.inf
    for focus_m in (0.1, 0.2, 0.5, 1.0):
        driver.set_focus_m(focus_m)
        step = backend.values["focus_absolute"]
        assert step % 4 == 0
        # the true focus at the chosen step is within half a grid step (2 steps) of the request, in dioptres
        slope = true_power_diopt(step + 1) - true_power_diopt(step)
        assert abs(true_power_diopt(step) - 1 / focus_m) <= 2 * slope + 0.001
        assert driver.status().focus_m == pytest.approx(1 / true_power_diopt(step), rel=5e-3)
    driver.set_focus_m(math.inf)
    assert backend.values["focus_absolute"] == 0
    assert driver.status().power_diopt == 0.0
    driver.close()
    assert not backend.closed  # a backend passed in belongs to the caller
    assert not driver.status().ok


def test_status_reports_a_position_outside_the_calibration() -> None:
    calibration = fit_calibration("step", [(100, 2.0), (500, 0.5), (900, 0.2)])
    backend = _backend()
    driver = V4l2LensDriver(calibration=calibration, backend=backend)
    driver.open()
    status = driver.status()  # the control still sits at 0, below the calibrated 100
    assert not status.ok and "focus_absolute=0 is outside the calibration" in status.message
    with pytest.raises(DriverError, match=r"focus 3\.0 m is outside the reachable range"):
        driver.set_focus_m(3.0)


def test_missing_focus_control_and_disjoint_range_are_driver_errors() -> None:
    no_focus = FakeBackend({"brightness": (ControlInfo(0, 255, 1, 128), 128)})
    with pytest.raises(DriverError, match="has no 'focus_absolute' control"):
        V4l2LensDriver(calibration=_calibration(), backend=no_focus).open()
    tiny = FakeBackend({"focus_absolute": (ControlInfo(2000, 3000, 1, 2000), 2000)})
    with pytest.raises(DriverError, match=r"range \[2000, 3000\] .* does not overlap the calibrated steps"):
        V4l2LensDriver(calibration=_calibration(), backend=tiny).open()
    with pytest.raises(DriverError, match="before open"):
        V4l2LensDriver(calibration=_calibration(), backend=_backend()).set_focus_m(1.0)


def test_v4l2_needs_a_calibration_in_steps() -> None:
    with pytest.raises(ConfigError, match="a calibration in 'step' is required"):
        V4l2LensDriver(backend=_backend())
    mA = fit_calibration("mA", [(0, 2.0), (10, 1.0), (20, 0.5)])
    with pytest.raises(ConfigError, match="the calibration must be in 'step', got 'mA'"):
        V4l2LensDriver(calibration=mA, backend=_backend())


def test_v4l2_without_linuxpy_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "linuxpy", None)
    monkeypatch.setitem(sys.modules, "linuxpy.video", None)
    with pytest.raises(DriverError, match=r"'linuxpy' package is not installed.*pip install linuxpy"):
        make_driver("v4l2", calibration=_calibration())
