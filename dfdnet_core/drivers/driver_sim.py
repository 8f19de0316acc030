"""A simulated lens: no hardware, reports the last commanded focus.

Used by the simulation launch files, by tests of the focus-sweep controller, and as the ``burger_mode`` of the
lens side of the pipeline. It can be told to fail after some number of commands to exercise error handling.
"""

from __future__ import annotations

import math
import threading

from dfdnet_core.drivers.driver import (
    LensStatus,
    check_focus_in_range,
    power_diopt_of,
    validate_focus_range_m,
)
from dfdnet_core.errors import ConfigError, DriverError, DriverTimeoutError


class SimLensDriver:
    """A lens that obeys instantly; ``status()`` reports the last commanded focus.

    Args:
        focus_range_m: (near, far) reachable focus distances in metres; far may be ``math.inf``.
        settle_time_s: reported as ``default_settle_time_s`` (seconds); the sim itself never sleeps.
        fail_after: if set, the first ``fail_after`` calls to ``set_focus_m`` succeed and every later one raises
            (a lens that died mid-run); ``open()`` resets the count. None = never fail.
        fail_with_timeout: raise :class:`DriverTimeoutError` instead of :class:`DriverError` when failing.
        temperature_c: temperature reported by ``status()``, degrees Celsius (None = not available).
        initial_focus_m: focus reported before the first command, metres; None = the far end of the range.

    Raises:
        ConfigError: an option is out of range.
    """

    name = "sim"

    def __init__(
        self,
        focus_range_m: tuple[float, float] = (0.1, math.inf),
        settle_time_s: float = 0.010,
        fail_after: int | None = None,
        fail_with_timeout: bool = False,
        temperature_c: float | None = 25.0,
        initial_focus_m: float | None = None,
    ) -> None:
        self.focus_range_m = validate_focus_range_m(focus_range_m, self.name)
        if not (math.isfinite(settle_time_s) and settle_time_s >= 0):
            raise ConfigError(f"sim: settle_time_s must be >= 0 seconds, got {settle_time_s!r}")
        if fail_after is not None and (isinstance(fail_after, bool) or int(fail_after) != fail_after
                                       or fail_after < 0):
            raise ConfigError(f"sim: fail_after must be None or an integer >= 0, got {fail_after!r}")
        if initial_focus_m is None:
            initial_focus_m = self.focus_range_m[1]
        near_m, far_m = self.focus_range_m
        if math.isnan(initial_focus_m) or not (near_m <= initial_focus_m <= far_m):
            raise ConfigError(
                f"sim: initial_focus_m {initial_focus_m!r} is outside focus_range_m {self.focus_range_m!r}"
            )
        self.default_settle_time_s = float(settle_time_s)
        self.fail_after = fail_after
        self.fail_with_timeout = fail_with_timeout
        self.temperature_c = temperature_c
        self._focus_m = float(initial_focus_m)
        self._commands = 0
        self._open = False
        self._failed = False
        self._lock = threading.Lock()

    @property
    def command_count(self) -> int:
        """Number of accepted ``set_focus_m`` commands since the last ``open()``."""
        return self._commands

    def open(self) -> None:
        """Start the simulated lens (and clear a simulated failure)."""
        with self._lock:
            self._open = True
            self._failed = False
            self._commands = 0

    def set_focus_m(self, focus_m: float) -> None:
        """Move the simulated lens to ``focus_m`` metres at once.

        Raises:
            DriverError: not open, focus outside ``focus_range_m``, or the simulated failure (``fail_after``).
            DriverTimeoutError: the simulated failure with ``fail_with_timeout``.
        """
        with self._lock:
            if not self._open:
                raise DriverError("sim: set_focus_m called before open()")
            check_focus_in_range(focus_m, self.focus_range_m, self.name)
            if self.fail_after is not None and self._commands >= self.fail_after:
                self._failed = True
                if self.fail_with_timeout:
                    raise DriverTimeoutError(
                        f"sim: simulated timeout after {self._commands} commands (fail_after={self.fail_after})"
                    )
                raise DriverError(
                    f"sim: simulated failure after {self._commands} commands (fail_after={self.fail_after})"
                )
            self._focus_m = float(focus_m)
            self._commands += 1

    def status(self) -> LensStatus:
        """The last commanded focus (metres and dioptres) and the configured temperature."""
        with self._lock:
            if not self._open:
                return LensStatus(math.nan, math.nan, None, False, "not open")
            message = "simulated failure" if self._failed else "ok"
            return LensStatus(
                self._focus_m, power_diopt_of(self._focus_m), self.temperature_c, not self._failed, message
            )

    def close(self) -> None:
        """Stop the simulated lens."""
        with self._lock:
            self._open = False
