"""Lens drivers: one :class:`~dfdnet_core.drivers.driver.LensDriver` interface, several back ends.

``driver_sim`` needs no hardware; ``driver_optotune`` talks to an Optotune Lens Driver 4 over serial;
``driver_v4l2`` drives a V4L2 ``focus_absolute`` control; ``driver_libcamera`` sets libcamera's
``LensPosition`` through picamera2. Choose one by name with :func:`make_driver`.
"""

from dfdnet_core.drivers.driver import DRIVERS, LensDriver, LensStatus, make_driver, register_driver

__all__ = ["DRIVERS", "LensDriver", "LensStatus", "make_driver", "register_driver"]
