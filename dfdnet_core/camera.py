"""Pinhole camera intrinsics (pixels), independent of ROS messages."""

from __future__ import annotations

import math
from dataclasses import dataclass

from dfdnet_core.errors import ConfigError


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of an image, as in the projection matrix P of a ROS CameraInfo.

    Attributes:
        width_px: image width in pixels.
        height_px: image height in pixels.
        fx_px: focal length along x in pixels.
        fy_px: focal length along y in pixels.
        cx_px: principal point x in pixels (0 = centre of the left pixel column).
        cy_px: principal point y in pixels.
    """

    width_px: int
    height_px: int
    fx_px: float
    fy_px: float
    cx_px: float
    cy_px: float

    def __post_init__(self) -> None:
        if self.width_px <= 0 or self.height_px <= 0:
            raise ConfigError(f"image size must be positive, got {self.width_px!r}x{self.height_px!r} px")
        for name in ("fx_px", "fy_px"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive finite number of pixels, got {value!r}")
        for name in ("cx_px", "cy_px"):
            if not math.isfinite(getattr(self, name)):
                raise ConfigError(f"{name} must be finite, got {getattr(self, name)!r}")

    @classmethod
    def from_horizontal_fov(cls, width_px: int, height_px: int, hfov_deg: float) -> CameraIntrinsics:
        """Square pixels, principal point at the image centre, given the horizontal field of view in degrees."""
        if not 0.0 < hfov_deg < 180.0:
            raise ConfigError(f"hfov_deg must be in (0, 180), got {hfov_deg!r}")
        fx = 0.5 * width_px / math.tan(math.radians(hfov_deg) / 2.0)
        return cls(width_px, height_px, fx, fx, (width_px - 1) / 2.0, (height_px - 1) / 2.0)

    def scaled(self, width_px: int, height_px: int) -> CameraIntrinsics:
        """The same camera at another resolution (pixel-centre convention kept)."""
        sx = width_px / self.width_px
        sy = height_px / self.height_px
        return CameraIntrinsics(
            width_px,
            height_px,
            self.fx_px * sx,
            self.fy_px * sy,
            (self.cx_px + 0.5) * sx - 0.5,
            (self.cy_px + 0.5) * sy - 0.5,
        )
