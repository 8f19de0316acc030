"""Tests of the simulated lens driver and the driver registry."""

from __future__ import annotations

import math

import pytest

from dfdnet_core.drivers import DRIVERS, LensDriver, LensStatus, make_driver
from dfdnet_core.drivers.driver_sim import SimLensDriver
from dfdnet_core.errors import ConfigError, DriverError, DriverTimeoutError


def test_sim_driver_satisfies_protocol_and_reports_last_commanded_focus() -> None:
    driver = make_driver("sim", focus_range_m=(0.2, 5.0), settle_time_s=0.02)
    assert isinstance(driver, LensDriver)
    assert driver.focus_range_m == (0.2, 5.0)
    assert driver.default_settle_time_s == 0.02
    driver.open()
    assert driver.status().focus_m == 5.0  # starts at the far end
    for focus_m in (0.2, 0.25, 1.0, 5.0):
        driver.set_focus_m(focus_m)
        status = driver.status()
        assert status.focus_m == focus_m
        assert status.power_diopt == pytest.approx(1.0 / focus_m)
        assert status.ok and status.message == "ok"


def test_sim_driver_reports_zero_dioptres_at_infinity() -> None:
    driver = SimLensDriver()
    driver.open()
    driver.set_focus_m(math.inf)
    assert driver.status() == LensStatus(math.inf, 0.0, 25.0, True, "ok")


def test_sim_driver_status_before_open_is_not_ok() -> None:
    status = SimLensDriver().status()
    assert not status.ok and status.message == "not open" and math.isnan(status.focus_m)


def test_sim_driver_rejects_commands_before_open_and_out_of_range() -> None:
    driver = SimLensDriver(focus_range_m=(0.3, 2.0))
    with pytest.raises(DriverError, match="before open"):
        driver.set_focus_m(1.0)
    driver.open()
    with pytest.raises(DriverError, match=r"focus 0\.1 m is outside the reachable range \[0\.3, 2\.0\]"):
        driver.set_focus_m(0.1)
    with pytest.raises(DriverError, match="focus nan m is outside"):
        driver.set_focus_m(math.nan)
    driver.close()
    driver.close()
    assert not driver.status().ok


def test_sim_driver_fails_after_n_commands_and_recovers_on_open() -> None:
    driver = SimLensDriver(fail_after=2)
    driver.open()
    driver.set_focus_m(1.0)
    driver.set_focus_m(2.0)
    with pytest.raises(DriverError, match="simulated failure after 2 commands"):
        driver.set_focus_m(3.0)
    status = driver.status()
    assert not status.ok and status.focus_m == 2.0
    driver.open()
    driver.set_focus_m(3.0)
    assert driver.status().ok and driver.command_count == 1


def test_sim_driver_can_fail_with_timeout() -> None:
    driver = SimLensDriver(fail_after=0, fail_with_timeout=True)
    driver.open()
    with pytest.raises(DriverTimeoutError, match="simulated timeout"):
        driver.set_focus_m(1.0)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"focus_range_m": (0.0, 1.0)}, r"focus_range_m needs 0 < near < far"),
        ({"focus_range_m": (2.0, 1.0)}, r"focus_range_m needs 0 < near < far"),
        ({"focus_range_m": "near"}, r"focus_range_m must be two numbers"),
        ({"settle_time_s": -1.0}, r"settle_time_s must be >= 0 seconds, got -1\.0"),
        ({"fail_after": -1}, r"fail_after must be None or an integer >= 0, got -1"),
        ({"fail_after": 1.5}, r"fail_after must be None or an integer >= 0, got 1\.5"),
        ({"initial_focus_m": 0.01}, r"initial_focus_m 0\.01 is outside"),
    ],
)
def test_sim_driver_rejects_bad_options(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        SimLensDriver(**options)  # type: ignore[arg-type]


def test_make_driver_rejects_unknown_name_listing_known_ones() -> None:
    known = r"\['libcamera', 'optotune', 'sim', 'v4l2'\]"
    with pytest.raises(ConfigError, match=r"unknown lens driver 'liquid'; known: " + known):
        make_driver("liquid")
    assert {"sim", "optotune", "v4l2", "libcamera"} <= set(DRIVERS)


def test_make_driver_rejects_unknown_options_listing_accepted_ones() -> None:
    match = r"lens driver 'sim' has no option\(s\) \['port'\]; accepted: \['focus_range_m'"
    with pytest.raises(ConfigError, match=match):
        make_driver("sim", port="/dev/ttyACM0")
    with pytest.raises(ConfigError, match=r"'optotune' has no option\(s\) \['baudrate'\]"):
        make_driver("optotune", baudrate=9600)
