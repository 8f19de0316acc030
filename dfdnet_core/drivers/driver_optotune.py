"""Optotune Lens Driver 4 / 4i with an EL-series liquid lens, over USB serial (pyserial).

Protocol, as implemented here (115200 baud, 8N1, binary; multi-byte values big-endian, two's complement):

==============================  ==========================  ==============================================
command sent                     reply (before CRC + CRLF)   meaning
==============================  ==========================  ==============================================
``Start`` (no CRC)               ``Ready\\r\\n`` (no CRC)     handshake; also resets the lens current to 0
``H``                            ``H`` + 1 char              firmware type
``CrMA`` 00 00                   ``CMA`` + int16             maximum output current, 1/100 mA
``MwDA``                         ``MDA``                     switch to current (DC) mode
``MwCA``                         ``MCA`` + u8 + int16 x2     switch to focal-power ("controlled") mode;
                                                             status byte, max and min focal power codes
``Aw`` + int16                   none                        set current: code = mA / I_max * 4096
``Ar`` 00 00                     ``A`` + int16               read current code
``PwDA`` + int16 + 00 00         none                        set focal power: code = (dpt + offset) * 200
``PrDA`` 00 00 00 00             ``PD``-like + int16         read focal power code
``TCA``                          ``TCA`` + int16             lens temperature, 1/16 degree Celsius
==============================  ==========================  ==============================================

Every command except ``Start`` ends with a CRC-16 over the command bytes (polynomial 0xA001 reflected, initial
value 0, i.e. CRC-16/ARC, the "CRC-16-IBM" of the manual), low byte first; replies carry the same CRC over their
payload, then ``\\r\\n``.

What was verified and against what:

- Handshake ``Start`` -> ``Ready\\r\\n``, the CRC algorithm and its little-endian placement, the focal-power
  command layout and its scaling: the Lens Driver 4 manual (2014 edition, section 5) — its worked example,
  5 dioptres -> code (5 + 5) * 200 = 2000 = 0x07D0, CRC low 0x31, high 0xFD — is a unit test here.
- Mode letters: the manual lists the mode identifiers S, Q, T, C, D; focal-power ("controlled") mode is
  ``MwCA`` and current mode ``MwDA``. There is no ``MwFA`` command (``PwFA`` sets the signal-generator frequency).
- Reply layouts (``CMA``, ``MCA`` with the focal-power range, ``TCA`` with 1/16 degree steps, ``Ar``, ``PrDA``),
  the firmware-type offset and the 4096 current scale come from independent open-source drivers that were used
  on hardware (C, C++, MATLAB and Python), not from the manual text: they agree with each other except that
  some use 4095 instead of 4096 as the current full scale (a 0.02 % difference, 0.07 mA at 292.84 mA).
- Uncertain: the firmware-type offset. Type ``A`` firmware encodes focal power with a +5 dpt offset; other
  types are taken to have none (``FIRMWARE_DIOPT_OFFSET``). The ``PrDA`` reply header bytes and the error
  reply format are not documented in what was available; the driver checks only the first reply byte (the
  command letter) and treats anything else as a desynchronised line.

Robustness: a reply with a bad CRC, a wrong header, missing CRLF, or no reply within ``timeout_s`` makes the
driver flush the input, re-handshake (which zeroes the current), restore the mode, and retry the whole
operation, at most ``max_retries`` more times; then it raises :class:`DriverError` (bad data) or
:class:`DriverTimeoutError` (silence). Set commands have no reply, so with ``verify_writes`` (default) the value
is read back and compared, which also catches a command the device dropped for a bad CRC. Each call after a
failure first re-synchronises, so a device that comes back is used again without reopening.
"""

from __future__ import annotations

import math
import struct
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from dfdnet_core.drivers.driver import (
    LensStatus,
    check_focus_in_range,
    power_diopt_of,
    validate_focus_range_m,
)
from dfdnet_core.drivers.optotune_protocol import (
    HANDSHAKE,
    HANDSHAKE_REPLY,
    TEMPERATURE_SCALE_C,
    SerialPort,
    crc16_arc,
    decode_current,
    decode_focal_power,
    encode_current,
    encode_focal_power,
    with_crc,
)
from dfdnet_core.errors import ConfigError, DriverError, DriverTimeoutError
from dfdnet_core.lens_calibration import CalibrationError, LensCalibration, load_calibration

CONTROL_MODES = ("focal_power", "current")

T = TypeVar("T")


class _LinkError(Exception):
    """One failed exchange; ``timeout`` tells silence from bad data."""

    def __init__(self, message: str, timeout: bool) -> None:
        super().__init__(message)
        self.timeout = timeout


def _open_pyserial(port: str, baud_rate: int, timeout_s: float) -> SerialPort:
    try:
        import serial
    except ImportError:
        raise DriverError(
            "optotune: the 'pyserial' package is not installed; install it with 'pip install pyserial'"
        ) from None
    try:
        return serial.Serial(port, baud_rate, timeout=timeout_s, write_timeout=timeout_s)  # type: ignore[no-any-return]
    except (serial.SerialException, OSError, ValueError) as exc:
        raise DriverError(f"optotune: cannot open serial port {port!r}: {exc}") from exc


class OptotuneLensDriver:
    """Optotune EL-series liquid lens on a Lens Driver 4, focus commanded in metres.

    Args:
        port: serial device of the lens driver (e.g. "/dev/ttyACM0", "/dev/serial/by-id/usb-Optotune...").
        control_mode: "focal_power" (the driver's closed-loop focal-power mode, commands in dioptres) or
            "current" (open-loop current in mA; needs a calibration in mA).
        calibration_path: YAML from :mod:`dfdnet_core.lens_calibration` mapping the lens unit (dioptres in
            focal-power mode, mA in current mode) to the camera's focus distance; "" = none. Without one, focal
            power mode takes focus power (1/m) = lens power (dpt), true for a liquid lens in front of an objective
            focused at infinity.
        calibration: the same as an object (instead of ``calibration_path``).
        focus_range_m: (near, far) in metres to allow; None or empty = the calibrated range, or (0.1, inf) without a
            calibration. In focal-power mode ``open()`` narrows it to what the lens reports reachable.
        settle_time_s: reported as ``default_settle_time_s`` (EL-10-30 settles in about 15-25 ms).
        timeout_s: time to wait for one reply, seconds.
        max_retries: re-synchronise and retry a failed operation this many times before raising.
        baud_rate: serial speed (the Lens Driver 4 uses 115200).
        verify_writes: read the set value back after each command and retry if it differs.
        serial_factory: opens the port (``(port, baud_rate, timeout_s) -> SerialPort``); default pyserial.

    Raises:
        ConfigError: an invalid option, or a calibration of the wrong unit for ``control_mode``.
    """

    name = "optotune"

    def __init__(
        self,
        port: str = "/dev/ttyACM0",
        control_mode: str = "focal_power",
        calibration_path: str = "",
        calibration: LensCalibration | None = None,
        focus_range_m: tuple[float, float] | None = None,
        settle_time_s: float = 0.020,
        timeout_s: float = 0.1,
        max_retries: int = 2,
        baud_rate: int = 115200,
        verify_writes: bool = True,
        serial_factory: Callable[[str, int, float], SerialPort] | None = None,
    ) -> None:
        if control_mode not in CONTROL_MODES:
            raise ConfigError(f"optotune: control_mode must be one of {list(CONTROL_MODES)}, got {control_mode!r}")
        if calibration_path and calibration is not None:
            raise ConfigError("optotune: give calibration_path or calibration, not both")
        if calibration_path:
            try:
                calibration = load_calibration(calibration_path)
            except CalibrationError as exc:
                raise ConfigError(f"optotune: {exc}") from None
        expected_unit = "diopt" if control_mode == "focal_power" else "mA"
        if calibration is not None and calibration.unit_name != expected_unit:
            raise ConfigError(
                f"optotune: control_mode {control_mode!r} needs a calibration in {expected_unit!r}, "
                f"got one in {calibration.unit_name!r} ({calibration_path or 'calibration object'})"
            )
        if control_mode == "current" and calibration is None:
            raise ConfigError("optotune: control_mode 'current' needs a calibration in mA (calibration_path)")
        for label, value in (("settle_time_s", settle_time_s), ("timeout_s", timeout_s)):
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"optotune: {label} must be > 0 seconds, got {value!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise ConfigError(f"optotune: max_retries must be an integer >= 0, got {max_retries!r}")
        if isinstance(baud_rate, bool) or not isinstance(baud_rate, int) or baud_rate <= 0:
            raise ConfigError(f"optotune: baud_rate must be a positive integer, got {baud_rate!r}")
        if not focus_range_m:  # None or [] (a ROS parameter cannot be None)
            focus_range_m = calibration.focus_range_m if calibration is not None else (0.1, math.inf)
        self.port = port
        self.control_mode = control_mode
        self.calibration = calibration
        self._configured_range_m = validate_focus_range_m(focus_range_m, self.name)
        self.focus_range_m = self._configured_range_m
        self.default_settle_time_s = float(settle_time_s)
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.baud_rate = baud_rate
        self.verify_writes = verify_writes
        self._serial_factory = serial_factory or _open_pyserial
        self._serial: SerialPort | None = None
        self._synced = False
        self._lock = threading.RLock()
        self.firmware_type = ""
        self.max_current_ma = math.nan
        self.lens_range_diopt = (-math.inf, math.inf)
        self.resync_count = 0
        self.stray_byte_count = 0
        self._last_code: int | None = None

    @property
    def unit_name(self) -> str:
        """The lens unit commanded: "diopt" in focal-power mode, "mA" in current mode."""
        return "diopt" if self.control_mode == "focal_power" else "mA"

    # ----------------------------------------------------------------------------------------- public API
    def open(self) -> None:
        """Open the port, handshake, read firmware type and maximum current, and set the control mode.

        Raises:
            DriverError: the port cannot be opened or the device does not answer as a Lens Driver 4.
            DriverTimeoutError: the device stayed silent.
        """
        with self._lock:
            self.close()
            self._serial = self._serial_factory(self.port, self.baud_rate, self.timeout_s)
            self._synced = False
            try:
                self._with_retries("open", self._identify)
            except DriverError:
                self.close()
                raise

    def set_focus_m(self, focus_m: float) -> None:
        """Command the lens to focus at ``focus_m`` metres (after the read-back check, if enabled).

        Raises:
            DriverError: not open, outside ``focus_range_m``, outside the lens's range, or bad replies.
            DriverTimeoutError: no reply within ``timeout_s`` after all retries.
        """
        with self._lock:
            if self._serial is None:
                raise DriverError("optotune: set_focus_m called before open()")
            check_focus_in_range(focus_m, self.focus_range_m, self.name)
            value = self._unit_from_focus_m(focus_m)
            code = self._encode(value)
            self._with_retries(f"set focus {focus_m!r} m", lambda: self._write_value(code))
            self._last_code = code

    def status(self) -> LensStatus:
        """Read the lens value back and the lens temperature.

        Raises:
            DriverError: bad replies after all retries.
            DriverTimeoutError: no reply within ``timeout_s`` after all retries.
        """
        with self._lock:
            if self._serial is None:
                return LensStatus(math.nan, math.nan, None, False, "not open")

            def read() -> tuple[int, float]:
                return self._read_code(), self._read_temperature_c()

            code, temperature_c = self._with_retries("status", read)
        value = self._decode(code)
        try:
            focus_m = self._focus_m_from_unit(value)
        except (CalibrationError, ValueError):
            return LensStatus(
                math.nan, math.nan, temperature_c, False,
                f"lens at {value:.4g} {self.unit_name}, outside the calibrated range",
            )
        return LensStatus(focus_m, power_diopt_of(focus_m), temperature_c, True, "ok")

    def close(self) -> None:
        """Close the serial port (the lens keeps its last value)."""
        with self._lock:
            if self._serial is not None:
                try:
                    self._serial.close()
                except OSError:
                    pass
            self._serial = None
            self._synced = False

    # --------------------------------------------------------------------------------------- unit mapping
    def _unit_from_focus_m(self, focus_m: float) -> float:
        if self.calibration is not None:
            try:
                return self.calibration.unit_from_focus_m(focus_m)
            except CalibrationError as exc:
                raise DriverError(f"optotune: {exc}") from None
        return power_diopt_of(focus_m)

    def _focus_m_from_unit(self, value: float) -> float:
        if self.calibration is not None:
            return self.calibration.focus_m_from_unit(value)
        if value < 0:
            raise ValueError("negative lens power has no real focus distance")
        return math.inf if value == 0 else 1.0 / value

    def _encode(self, value: float) -> int:
        if self.control_mode == "focal_power":
            low, high = self.lens_range_diopt
            if not (low - 1e-9 <= value <= high + 1e-9):
                raise DriverError(
                    f"optotune: focal power {value:.4g} dpt is outside the lens range [{low:.4g}, {high:.4g}] dpt"
                )
            code = encode_focal_power(value, self.firmware_type)
        else:
            if abs(value) > self.max_current_ma:
                raise DriverError(
                    f"optotune: current {value:.4g} mA exceeds the driver maximum {self.max_current_ma:.4g} mA"
                )
            code = encode_current(value, self.max_current_ma)
        if not -32768 <= code <= 32767:
            raise DriverError(f"optotune: code {code} for {value!r} {self.unit_name} does not fit 16 bits")
        return code

    def _decode(self, code: int) -> float:
        if self.control_mode == "focal_power":
            return decode_focal_power(code, self.firmware_type)
        return decode_current(code, self.max_current_ma)

    # ------------------------------------------------------------------------------------------ protocol
    def _with_retries(self, what: str, operation: Callable[[], T]) -> T:
        attempt = 0
        while True:
            try:
                if not self._synced:
                    self._resync()
                return operation()
            except _LinkError as exc:
                last = exc
                self._synced = False
            attempt += 1
            if attempt > self.max_retries:
                break
        message = (
            f"optotune on {self.port!r}: {what} failed after {self.max_retries + 1} attempts "
            f"(timeout_s={self.timeout_s}): {last}"
        )
        if last.timeout:
            raise DriverTimeoutError(message)
        raise DriverError(message)

    def _port(self) -> SerialPort:
        if self._serial is None:
            raise DriverError("optotune: the serial port is closed")
        return self._serial

    def _resync(self) -> None:
        """Flush, handshake and restore the control mode; the lens current drops to 0 meanwhile."""
        port = self._port()
        port.reset_input_buffer()
        port.write(HANDSHAKE)
        deadline = time.monotonic() + self.timeout_s
        received = b""
        while HANDSHAKE_REPLY not in received:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            port.timeout = left
            chunk = port.read(max(1, min(port.in_waiting, 64)))
            received += chunk
        if HANDSHAKE_REPLY not in received:
            raise _LinkError(
                f"no {HANDSHAKE_REPLY!r} in reply to {HANDSHAKE!r} (got {received[-32:]!r})",
                timeout=not received,
            )
        self._synced = True
        self.resync_count += 1
        if self.firmware_type:  # already identified: restore the mode and the last value
            self._set_mode()
            if self._last_code is not None:
                self._write_value(self._last_code)

    def _identify(self) -> None:
        self.firmware_type = chr(self._exchange(b"H", 2)[1])
        self.max_current_ma = struct.unpack(">h", self._exchange(b"CrMA\x00\x00", 5)[3:5])[0] / 100.0
        if not self.max_current_ma > 0:
            raise _LinkError(f"device reports a maximum current of {self.max_current_ma!r} mA", timeout=False)
        self._set_mode()

    def _set_mode(self) -> None:
        if self.control_mode == "current":
            self._exchange(b"MwDA", 3)
            return
        reply = self._exchange(b"MwCA", 8)
        status, max_code, min_code = struct.unpack(">Bhh", reply[3:8])
        if status != 0:
            raise _LinkError(f"focal-power mode refused with status byte {status}", timeout=False)
        low = decode_focal_power(min_code, self.firmware_type)
        high = decode_focal_power(max_code, self.firmware_type)
        self.lens_range_diopt = (min(low, high), max(low, high))
        self._narrow_focus_range()

    def _narrow_focus_range(self) -> None:
        """Intersect the configured focus range with what the lens reaches in focal-power mode."""
        low, high = self.lens_range_diopt
        if self.calibration is not None:  # calibration: lens dioptres -> focus distance
            u_low = max(low, self.calibration.unit_range[0])
            u_high = min(high, self.calibration.unit_range[1])
            if u_low > u_high:
                raise _LinkError(
                    f"the lens range [{low:.4g}, {high:.4g}] dpt does not overlap the calibrated range "
                    f"{self.calibration.unit_range!r} dpt",
                    timeout=False,
                )
            ends = (self.calibration.power_diopt_from_unit(u_low), self.calibration.power_diopt_from_unit(u_high))
            p_low, p_high = min(ends), max(ends)
        else:  # focus power = lens power
            p_low, p_high = max(low, 0.0), high
        near_m = max(self._configured_range_m[0], math.inf if p_high <= 0 else 1.0 / p_high)
        far_m = min(self._configured_range_m[1], math.inf if p_low <= 0 else 1.0 / p_low)
        if not near_m < far_m:
            raise _LinkError(
                f"the lens focus power range [{p_low:.4g}, {p_high:.4g}] dpt does not overlap "
                f"focus_range_m {self._configured_range_m!r}",
                timeout=False,
            )
        self.focus_range_m = (near_m, far_m)

    def _write_value(self, code: int) -> None:
        if self.control_mode == "focal_power":
            self._exchange(b"PwDA" + struct.pack(">h", code) + b"\x00\x00", 0)
        else:
            self._exchange(b"Aw" + struct.pack(">h", code), 0)
        if self.verify_writes:
            echoed = self._read_code()
            if abs(echoed - code) > 1:
                raise _LinkError(f"read back code {echoed} after commanding {code}", timeout=False)

    def _read_code(self) -> int:
        if self.control_mode == "focal_power":
            return int(struct.unpack(">h", self._exchange(b"PrDA\x00\x00\x00\x00", 4)[2:4])[0])
        return int(struct.unpack(">h", self._exchange(b"Ar\x00\x00", 3)[1:3])[0])

    def _read_temperature_c(self) -> float:
        return int(struct.unpack(">h", self._exchange(b"TCA", 5)[3:5])[0]) * TEMPERATURE_SCALE_C

    def _exchange(self, payload: bytes, reply_len: int) -> bytes:
        """Send ``payload`` + CRC; read ``reply_len`` payload bytes + CRC + CRLF and check them."""
        port = self._port()
        try:  # pyserial's SerialException and SerialTimeoutException are OSErrors (also: adapter unplugged)
            stray = port.in_waiting
            if stray:
                self.stray_byte_count += stray
                port.reset_input_buffer()
            port.write(with_crc(payload))
            if reply_len == 0:
                return b""
            want = reply_len + 4
            port.timeout = self.timeout_s
            frame = port.read(want)
        except OSError as exc:
            raise _LinkError(f"serial I/O for {payload[:4]!r} failed: {exc}", timeout=True) from exc
        command = payload[:4].decode("ascii", "replace")
        if len(frame) < want:
            raise _LinkError(
                f"{len(frame)} of {want} reply bytes to {command!r} within {self.timeout_s} s",
                timeout=not frame,
            )
        data, crc, end = frame[:reply_len], frame[reply_len:reply_len + 2], frame[reply_len + 2:]
        if data[:1] != payload[:1]:
            raise _LinkError(f"reply to {command!r} starts with {data[:1]!r}: {frame!r}", timeout=False)
        if struct.unpack("<H", crc)[0] != crc16_arc(data):
            raise _LinkError(f"bad CRC in reply to {command!r}: {frame!r}", timeout=False)
        if end != b"\r\n":
            raise _LinkError(f"reply to {command!r} does not end with CRLF: {frame!r}", timeout=False)
        return data

