"""Tests of the Optotune Lens Driver 4 driver against a fake device on a pseudo-terminal."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fake_optotune import FakeOptotune  # test support module next to this file

from dfdnet_core.drivers import make_driver
from dfdnet_core.drivers.driver_optotune import OptotuneLensDriver
from dfdnet_core.drivers.optotune_protocol import (
    crc16_arc,
    decode_focal_power,
    encode_current,
    encode_focal_power,
    with_crc,
)
from dfdnet_core.errors import ConfigError, DriverError, DriverTimeoutError
from dfdnet_core.lens_calibration import fit_calibration, save_calibration

pytest.importorskip("serial")

TIMEOUT_S = 0.03  # for the tests that wait on silence
REPLY_TIMEOUT_S = 0.2  # elsewhere: generous, so a loaded test machine causes no spurious retries


@pytest.fixture
def device() -> Iterator[FakeOptotune]:
    fake = FakeOptotune()
    yield fake
    fake.stop()


def _driver(device: FakeOptotune, **options: object) -> OptotuneLensDriver:
    options.setdefault("timeout_s", REPLY_TIMEOUT_S)
    driver = make_driver("optotune", port=device.port, **options)
    assert isinstance(driver, OptotuneLensDriver)
    return driver


# ------------------------------------------------------------------------------------------- encoding
def test_crc_matches_the_standard_check_value_and_the_manual_example() -> None:
    assert crc16_arc(b"123456789") == 0xBB3D  # CRC-16/ARC catalogue check value
    # Lens Driver 4 manual: 5 dpt -> (5 + 5) * 200 = 2000 = 0x07D0, CRC bytes 0x31 (low) then 0xFD (high).
    frame = with_crc(b"PwDA" + bytes([0x07, 0xD0, 0x00, 0x00]))
    assert frame[-2:] == bytes([0x31, 0xFD])
    assert encode_focal_power(5.0, "A") == 2000


def test_focal_power_and_current_codes_round_trip_with_firmware_offset() -> None:
    assert encode_focal_power(0.0, "A") == 1000 and encode_focal_power(0.0, "B") == 0
    assert decode_focal_power(encode_focal_power(-1.235, "A"), "A") == pytest.approx(-1.235)
    assert encode_current(292.84, 292.84) == 4096 and encode_current(-73.21, 292.84) == -1024


# ---------------------------------------------------------------------------------------- normal use
def test_focal_power_sweep_sets_the_lens_power_for_each_focus(device: FakeOptotune) -> None:
    driver = _driver(device)
    driver.open()
    assert device.mode == "C" and driver.firmware_type == "A"
    assert driver.max_current_ma == pytest.approx(292.84)
    assert driver.lens_range_diopt == pytest.approx((-2.0, 3.0))
    # Without a calibration, focus power = lens power: 3 dpt reaches 1/3 m, 0 dpt reaches infinity.
    assert driver.focus_range_m == pytest.approx((1 / 3, math.inf))
    for focus_m in (0.4, 0.5, 1.0, 2.0, math.inf):
        driver.set_focus_m(focus_m)
        assert device.focal_power_diopt() == pytest.approx(1 / focus_m, abs=0.0025)  # 1/200 dpt codes
        status = driver.status()
        assert status.ok and status.temperature_c == pytest.approx(31.25)
        assert status.power_diopt == pytest.approx(1 / focus_m, abs=0.0025)
    assert device.crc_errors == 0 and driver.resync_count == 1
    driver.close()
    assert not driver.status().ok


def test_current_mode_uses_the_calibration_in_milliamperes(device: FakeOptotune, tmp_path: Path) -> None:
    # A lens whose focus power rises linearly from 0.5 dpt at 0 mA to 4.5 dpt at 200 mA.
    pairs = [(ma, 1.0 / (0.5 + 0.02 * ma)) for ma in (0.0, 50.0, 100.0, 150.0, 200.0)]
    path = save_calibration(fit_calibration("mA", pairs), tmp_path / "lens.yaml")
    driver = _driver(device, control_mode="current", calibration_path=str(path))
    assert driver.focus_range_m == pytest.approx((1 / 4.5, 2.0))
    driver.open()
    assert device.mode == "D"
    driver.set_focus_m(0.4)  # 2.5 dpt -> 100 mA
    assert device.current_ma() == pytest.approx(100.0, abs=0.08)
    assert driver.status().focus_m == pytest.approx(0.4, rel=2e-3)
    driver.close()


# --------------------------------------------------------------------------------------------- faults
def test_driver_recovers_from_a_garbled_reply_crc(device: FakeOptotune) -> None:
    driver = _driver(device)
    driver.open()
    device.garble_replies = 1  # the read-back after the next command arrives with a bad CRC
    driver.set_focus_m(0.5)
    assert device.focal_power_diopt() == pytest.approx(2.0)
    assert driver.resync_count == 2  # one re-handshake, then success
    driver.close()


def test_driver_recovers_when_the_device_rejects_a_corrupted_command(device: FakeOptotune) -> None:
    driver = _driver(device)
    driver.open()
    device.corrupt_commands = 1  # the set command is lost on the line; only the read-back reveals it
    driver.set_focus_m(1.0)
    assert device.crc_errors == 1
    assert device.focal_power_diopt() == pytest.approx(1.0)
    driver.close()


def test_persistent_bad_crc_raises_driver_error_after_bounded_retries(device: FakeOptotune) -> None:
    driver = _driver(device, max_retries=2)
    driver.open()
    device.garble_replies = 1000
    with pytest.raises(DriverError, match=r"set focus 0\.5 m failed after 3 attempts.*bad CRC") as info:
        driver.set_focus_m(0.5)
    assert not isinstance(info.value, DriverTimeoutError)
    device.garble_replies = 0
    driver.set_focus_m(0.5)  # the next call re-synchronises by itself
    assert device.focal_power_diopt() == pytest.approx(2.0)
    driver.close()


def test_silent_device_times_out_within_the_retry_budget_and_recovers(device: FakeOptotune) -> None:
    driver = _driver(device, max_retries=2, timeout_s=TIMEOUT_S)
    driver.open()
    driver.set_focus_m(1.0)
    device.silent = True  # the device stops answering mid-sweep
    start = time.monotonic()
    with pytest.raises(DriverTimeoutError, match=r"failed after 3 attempts \(timeout_s=0\.03\)"):
        driver.set_focus_m(0.5)
    elapsed_s = time.monotonic() - start
    assert TIMEOUT_S * 3 <= elapsed_s < TIMEOUT_S * 3 + 0.25
    with pytest.raises(DriverTimeoutError, match="status failed"):
        driver.status()
    device.silent = False  # it comes back
    driver.set_focus_m(0.5)
    assert device.focal_power_diopt() == pytest.approx(2.0)
    assert driver.status().focus_m == pytest.approx(0.5)
    driver.close()


def test_open_on_a_silent_device_raises_timeout(device: FakeOptotune) -> None:
    device.silent = True
    driver = _driver(device, max_retries=0, timeout_s=TIMEOUT_S)
    with pytest.raises(DriverTimeoutError, match=r"open failed after 1 attempts.*no b'Ready\\r\\n'"):
        driver.open()
    assert not driver.status().ok


def test_open_on_a_missing_port_raises_driver_error(tmp_path: Path) -> None:
    driver = OptotuneLensDriver(port=str(tmp_path / "ttyNONE"), timeout_s=TIMEOUT_S)
    with pytest.raises(DriverError, match="cannot open serial port .*ttyNONE"):
        driver.open()


# --------------------------------------------------------------------------------------------- checks
def test_commands_outside_the_range_are_refused(device: FakeOptotune) -> None:
    driver = _driver(device)
    with pytest.raises(DriverError, match="before open"):
        driver.set_focus_m(1.0)
    driver.open()
    with pytest.raises(DriverError, match=r"focus 0\.2 m is outside the reachable range"):
        driver.set_focus_m(0.2)  # 5 dpt > the lens's 3 dpt
    driver.close()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"control_mode": "sine"}, r"control_mode must be one of \['focal_power', 'current'\], got 'sine'"),
        ({"control_mode": "current"}, "needs a calibration in mA"),
        ({"timeout_s": 0.0}, r"timeout_s must be > 0 seconds, got 0\.0"),
        ({"max_retries": -1}, r"max_retries must be an integer >= 0, got -1"),
        ({"baud_rate": 0}, "baud_rate must be a positive integer, got 0"),
        ({"calibration_path": "/nonexistent/cal.yaml"}, "cannot read lens calibration '/nonexistent/cal.yaml'"),
    ],
)
def test_bad_options_are_rejected(options: dict[str, object], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        OptotuneLensDriver(**options)  # type: ignore[arg-type]


def test_calibration_unit_must_match_the_mode() -> None:
    calibration = fit_calibration("mA", [(0.0, 2.0), (50.0, 1.0), (100.0, 0.5)])
    with pytest.raises(ConfigError, match="control_mode 'focal_power' needs a calibration in 'diopt', got one in 'mA'"):
        OptotuneLensDriver(calibration=calibration)
