"""The focal stack: N images of one scene at N focus distances, with the camera that took them."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import StackError
from dfdnet_core.optics import LensOptics


@dataclass(frozen=True)
class FocalStack:
    """N registered RGB images of one scene, each focused at its own distance.

    Attributes:
        images: (N, H, W, 3) uint8 RGB.
        focus_distances_m: (N,) float64 focus distance of each image in metres, same order as ``images``
            (``inf`` = focused at infinity).
        intrinsics: pinhole intrinsics of the images (pixels).
        optics: focal length, f-number and pixel pitch of the lens.
        stamp_ns: time of the stack (the newest frame's stamp), integer nanoseconds.
        frame_id: optical frame of the camera.
        sweep_id: counter of the focus sweep the stack came from.
    """

    images: npt.NDArray[np.uint8]
    focus_distances_m: npt.NDArray[np.float64]
    intrinsics: CameraIntrinsics
    optics: LensOptics
    stamp_ns: int = 0
    frame_id: str = "camera_optical_frame"
    sweep_id: int = 0

    def __post_init__(self) -> None:
        images = self.images
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
            shape = getattr(images, "shape", None)
            raise StackError(f"images must be an (N, H, W, 3) array, got shape {shape!r}")
        if images.dtype != np.uint8:
            raise StackError(f"images must be uint8 RGB, got dtype {images.dtype}")
        n, h, w, _ = images.shape
        if n < 2:
            raise StackError(f"a focal stack needs at least 2 images, got {n}")
        fd = np.asarray(self.focus_distances_m, dtype=np.float64)
        if fd.shape != (n,):
            raise StackError(f"focus_distances_m must have shape ({n},), got {fd.shape!r}")
        if np.any(np.isnan(fd)) or np.any(fd <= 0):
            raise StackError(f"focus distances must be > 0 m (inf = focused at infinity), got {fd.tolist()!r}")
        if (w, h) != (self.intrinsics.width_px, self.intrinsics.height_px):
            raise StackError(
                f"images are {w}x{h} px but the intrinsics describe "
                f"{self.intrinsics.width_px}x{self.intrinsics.height_px} px"
            )
        if self.stamp_ns < 0 or not math.isfinite(self.stamp_ns):
            raise StackError(f"stamp_ns must be >= 0, got {self.stamp_ns!r}")
        object.__setattr__(self, "focus_distances_m", fd)

    @property
    def size(self) -> int:
        """Number of images N."""
        return int(self.images.shape[0])

    @property
    def height_px(self) -> int:
        return int(self.images.shape[1])

    @property
    def width_px(self) -> int:
        return int(self.images.shape[2])
