"""A fake Optotune Lens Driver 4 on a pseudo-terminal, for driver tests (no hardware).

It speaks the binary protocol described in :mod:`dfdnet_core.drivers.driver_optotune`, but is written from the
protocol table, not from the driver: it frames replies itself, checks incoming CRCs with its own bitwise CRC, and
models the state a real driver keeps (mode, current and focal-power set points, temperature). Faults can be
switched on while it runs: garbled reply CRCs, commands treated as corrupted on the line, and silence.
"""

from __future__ import annotations

import os
import select
import struct
import threading
import tty
from dataclasses import dataclass, field


def _crc(data: bytes) -> int:
    # Bit-by-bit CRC-16/ARC written independently of the driver (table-free, LSB first).
    crc = 0x0000
    for byte in data:
        for bit in range(8):
            mix = (crc ^ (byte >> bit)) & 1
            crc >>= 1
            if mix:
                crc ^= 0xA001
    return crc


# command prefix -> total command length including the 2 CRC bytes
_COMMAND_LENGTHS = {
    b"H": 3,
    b"CrMA": 8,
    b"MwCA": 6,
    b"MwDA": 6,
    b"MMA": 5,
    b"Aw": 6,
    b"Ar": 6,
    b"PwDA": 10,
    b"PrDA": 10,
    b"TCA": 5,
}


@dataclass
class FakeOptotune:
    """The device state and fault switches (all public attributes may be changed while it runs).

    Attributes:
        firmware_type: reply to ``H``.
        max_current_ma: reported by ``CrMA`` (in 1/100 mA on the wire).
        lens_range_diopt: (min, max) focal power reported by ``MwCA``.
        temperature_c: reported by ``TCA`` (1/16 degree on the wire).
        garble_replies: the next N replies get a corrupted CRC.
        corrupt_commands: the next N well-formed commands are treated as if their CRC were wrong.
        silent: while True, input is swallowed and nothing is answered.
    """

    firmware_type: str = "A"
    max_current_ma: float = 292.84
    lens_range_diopt: tuple[float, float] = (-2.0, 3.0)
    temperature_c: float = 31.25
    garble_replies: int = 0
    corrupt_commands: int = 0
    silent: bool = False
    mode: str = "D"
    current_code: int = 0
    focal_power_code: int = 0
    handshakes: int = 0
    crc_errors: int = 0
    commands: list[bytes] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.master_fd, self.slave_fd = os.openpty()
        tty.setraw(self.slave_fd)
        tty.setraw(self.master_fd)
        self.port = os.ttyname(self.slave_fd)
        self._buffer = b""
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="fake-optotune", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------------------------ lifecycle
    def stop(self) -> None:
        """Stop the thread and close the pseudo-terminal."""
        self._stop.set()
        self._thread.join(timeout=2.0)
        for fd in (self.master_fd, self.slave_fd):
            try:
                os.close(fd)
            except OSError:
                pass

    def focal_power_diopt(self) -> float:
        """Current focal-power set point in dioptres (decoded as the device would)."""
        offset = 5.0 if self.firmware_type == "A" else 0.0
        return self.focal_power_code / 200.0 - offset

    def current_ma(self) -> float:
        """Current set point in mA."""
        return self.current_code * self.max_current_ma / 4096

    # -------------------------------------------------------------------------------------- the loop
    def _run(self) -> None:
        while not self._stop.is_set():
            ready, _, _ = select.select([self.master_fd], [], [], 0.005)
            if not ready:
                continue
            try:
                chunk = os.read(self.master_fd, 256)
            except OSError:  # the driver closed its side; wait for it to reopen
                self._stop.wait(0.005)
                continue
            with self._lock:
                if self.silent:
                    self._buffer = b""
                    continue
                self._buffer += chunk
                self._parse()

    def _send(self, payload: bytes, raw: bool = False) -> None:
        if raw:
            frame = payload
        else:
            crc = _crc(payload)
            if self.garble_replies > 0:
                self.garble_replies -= 1
                crc ^= 0x5A5A
            frame = payload + struct.pack("<H", crc) + b"\r\n"
        os.write(self.master_fd, frame)

    def _parse(self) -> None:
        while self._buffer:
            if self._buffer.startswith(b"Start"):
                self._buffer = self._buffer[5:]
                self.handshakes += 1
                self.current_code = 0  # the real driver zeroes the current on a handshake
                self._send(b"Ready\r\n", raw=True)
                continue
            if b"Start".startswith(self._buffer[:5]):
                return  # a partial handshake
            length = next((n for p, n in _COMMAND_LENGTHS.items() if self._buffer.startswith(p)), None)
            if length is None:
                if any(p.startswith(self._buffer) for p in _COMMAND_LENGTHS):
                    return  # a partial prefix
                self._buffer = self._buffer[1:]  # unknown byte: drop it and resynchronise
                continue
            if len(self._buffer) < length:
                return
            command, self._buffer = self._buffer[:length], self._buffer[length:]
            body, crc = command[:-2], struct.unpack("<H", command[-2:])[0]
            if crc != _crc(body) or self.corrupt_commands > 0:
                if crc == _crc(body):
                    self.corrupt_commands -= 1
                self.crc_errors += 1
                self._send(b"E\x01")  # error reply; the exact format of the real one is not documented
                continue
            self.commands.append(body)
            self._execute(body)

    def _execute(self, body: bytes) -> None:
        offset = 5.0 if self.firmware_type == "A" else 0.0
        if body == b"H":
            self._send(b"H" + self.firmware_type.encode("ascii"))
        elif body.startswith(b"CrMA"):
            self._send(b"CMA" + struct.pack(">h", round(self.max_current_ma * 100)))
        elif body == b"MwDA":
            self.mode = "D"
            self._send(b"MDA")
        elif body == b"MwCA":
            self.mode = "C"
            low, high = self.lens_range_diopt
            self._send(
                b"MCA" + struct.pack(">Bhh", 0, round((high + offset) * 200), round((low + offset) * 200))
            )
        elif body == b"MMA":
            self._send(b"MMA" + bytes([1 if self.mode == "D" else 5]))
        elif body.startswith(b"Aw"):
            if self.mode == "D":
                self.current_code = struct.unpack(">h", body[2:4])[0]
        elif body.startswith(b"Ar"):
            self._send(b"A" + struct.pack(">h", self.current_code))
        elif body.startswith(b"PwDA"):
            if self.mode == "C":
                self.focal_power_code = struct.unpack(">h", body[4:6])[0]
        elif body.startswith(b"PrDA"):
            self._send(b"PD" + struct.pack(">h", self.focal_power_code))
        elif body == b"TCA":
            self._send(b"TCA" + struct.pack(">h", round(self.temperature_c * 16)))
