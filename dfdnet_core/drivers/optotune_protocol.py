"""Lens Driver 4 wire format: CRC-16, framing and value codes (no I/O).

Used by :mod:`dfdnet_core.drivers.driver_optotune`, whose docstring lists the commands, their replies and what was
verified against which source. Values on the wire are big-endian two's complement; the CRC is little-endian.
"""

from __future__ import annotations

import struct
from typing import Protocol

CURRENT_FULL_SCALE_CODE = 4096
FOCAL_POWER_SCALE = 200.0
TEMPERATURE_SCALE_C = 1.0 / 16.0
FIRMWARE_DIOPT_OFFSET: dict[str, float] = {"A": 5.0}
HANDSHAKE = b"Start"
HANDSHAKE_REPLY = b"Ready\r\n"


def crc16_arc(data: bytes) -> int:
    """CRC-16 with reflected polynomial 0xA001 and initial value 0 (CRC-16/ARC, "CRC-16-IBM")."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


def with_crc(payload: bytes) -> bytes:
    """``payload`` followed by its CRC-16/ARC, low byte first (the Lens Driver 4 framing)."""
    return payload + struct.pack("<H", crc16_arc(payload))


def firmware_offset_diopt(firmware_type: str) -> float:
    """Dioptre offset added before scaling focal power, by firmware type (5 for type ``A``, else 0)."""
    return FIRMWARE_DIOPT_OFFSET.get(firmware_type, 0.0)


def encode_focal_power(power_diopt: float, firmware_type: str) -> int:
    """Focal-power code for ``PwDA``: (dioptres + offset) * 200, rounded."""
    return round((power_diopt + firmware_offset_diopt(firmware_type)) * FOCAL_POWER_SCALE)


def decode_focal_power(code: int, firmware_type: str) -> float:
    """Dioptres from a focal-power code (inverse of :func:`encode_focal_power`)."""
    return code / FOCAL_POWER_SCALE - firmware_offset_diopt(firmware_type)


def encode_current(current_ma: float, max_current_ma: float) -> int:
    """Current code for ``Aw``: mA / I_max * 4096, rounded."""
    return round(current_ma / max_current_ma * CURRENT_FULL_SCALE_CODE)


def decode_current(code: int, max_current_ma: float) -> float:
    """Milliamperes from a current code (inverse of :func:`encode_current`)."""
    return code * max_current_ma / CURRENT_FULL_SCALE_CODE


class SerialPort(Protocol):
    """The part of ``serial.Serial`` the driver uses."""

    timeout: float | None

    def write(self, data: bytes) -> int | None: ...

    def read(self, size: int) -> bytes: ...

    def reset_input_buffer(self) -> None: ...

    @property
    def in_waiting(self) -> int: ...

    def close(self) -> None: ...
