"""What every data set loader returns: an RGB-D sample or a focal-stack sample.

Units: depth in metres along the optical axis (planar depth, REP 118), float32, NaN where there is
no depth; focus distances in metres from the lens, float64; disparity in pixels (DDFF-12 only);
intrinsics in pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import DataError


def _check_rgb(name: str, what: str, rgb: object) -> tuple[int, int]:
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[-1] != 3:
        raise DataError(
            f"{name}: {what} must be an (H, W, 3) array, got shape {getattr(rgb, 'shape', None)!r}"
        )
    if rgb.dtype != np.uint8:
        raise DataError(f"{name}: {what} must be uint8 RGB, got dtype {rgb.dtype}")
    return int(rgb.shape[0]), int(rgb.shape[1])


def _check_map(name: str, what: str, arr: object, hw: tuple[int, int]) -> None:
    if not isinstance(arr, np.ndarray) or arr.shape != hw:
        raise DataError(
            f"{name}: {what} must have shape {hw!r}, got {getattr(arr, 'shape', None)!r}"
        )
    if arr.dtype != np.float32:
        raise DataError(f"{name}: {what} must be float32, got dtype {arr.dtype}")
    finite = arr[np.isfinite(arr)]
    if finite.size and float(finite.min()) <= 0.0:
        raise DataError(f"{name}: {what} must be > 0 or NaN, found minimum {float(finite.min())!r}")


def _check_intrinsics(name: str, intrinsics: CameraIntrinsics | None, hw: tuple[int, int]) -> None:
    if intrinsics is None:
        return
    if (intrinsics.height_px, intrinsics.width_px) != hw:
        raise DataError(
            f"{name}: image is {hw[1]}x{hw[0]} px but the intrinsics describe "
            f"{intrinsics.width_px}x{intrinsics.height_px} px"
        )


def _check_positive(name: str, what: str, value: float | None) -> None:
    if value is not None and not (math.isfinite(value) and value > 0):
        raise DataError(f"{name}: {what} must be a positive finite number, got {value!r}")


@dataclass(frozen=True)
class RgbdSample:
    """One registered colour image and depth image.

    Attributes:
        rgb: (H, W, 3) uint8 RGB.
        depth_m: (H, W) float32 planar depth in metres (distance along the optical axis); NaN = no
            depth.
        intrinsics: pinhole intrinsics of ``rgb`` in pixels, or None when the data set does not give
            them.
        name: identifier of the sample inside its data set (file stem, scene/frame...).
    """

    rgb: npt.NDArray[np.uint8]
    depth_m: npt.NDArray[np.float32]
    intrinsics: CameraIntrinsics | None
    name: str

    def __post_init__(self) -> None:
        hw = _check_rgb(self.name, "rgb", self.rgb)
        _check_map(self.name, "depth_m", self.depth_m, hw)
        _check_intrinsics(self.name, self.intrinsics, hw)

    @property
    def valid_fraction(self) -> float:
        """Fraction of pixels with a depth (0..1)."""
        return float(np.isfinite(self.depth_m).mean())


@dataclass(frozen=True)
class StackSample:
    """A real (or published synthetic) focal stack, with ground truth where the data set has it.

    Attributes:
        images: (N, H, W, 3) uint8 RGB, one image per focus distance.
        focus_distances_m: (N,) float64 focus distance of each image in metres, same order as
            ``images``.
        name: identifier of the stack inside its data set.
        depth_m: (H, W) float32 planar depth in metres, NaN = no depth; None without ground truth.
        disparity_px: (H, W) float32 ground-truth disparity in pixels, NaN = none (DDFF-12), else
            None.
        gt_is_disparity: True when the data set's ground truth (and its published metrics) are in
            disparity,
            i.e. evaluate against ``disparity_px``; ``depth_m`` is then a convenience conversion.
        intrinsics: pinhole intrinsics of the images in pixels, or None.
        f_number: aperture f-number of the capture, or None when unknown.
        focal_length_m: lens focal length in metres, or None when unknown.
        all_in_focus: (H, W, 3) uint8 all-in-focus image when the data set ships one, else None.
    """

    images: npt.NDArray[np.uint8]
    focus_distances_m: npt.NDArray[np.float64]
    name: str
    depth_m: npt.NDArray[np.float32] | None = None
    disparity_px: npt.NDArray[np.float32] | None = None
    gt_is_disparity: bool = False
    intrinsics: CameraIntrinsics | None = None
    f_number: float | None = None
    focal_length_m: float | None = None
    all_in_focus: npt.NDArray[np.uint8] | None = None

    def __post_init__(self) -> None:
        images = self.images
        if not isinstance(images, np.ndarray) or images.ndim != 4 or images.shape[-1] != 3:
            raise DataError(
                f"{self.name}: images must be an (N, H, W, 3) array, got shape "
                f"{getattr(images, 'shape', None)!r}"
            )
        if images.dtype != np.uint8:
            raise DataError(f"{self.name}: images must be uint8 RGB, got dtype {images.dtype}")
        n, h, w = (int(s) for s in images.shape[:3])
        if n < 1:
            raise DataError(f"{self.name}: a stack needs at least one image, got 0")
        fd = np.asarray(self.focus_distances_m, dtype=np.float64)
        if fd.shape != (n,):
            raise DataError(
                f"{self.name}: focus_distances_m must have shape ({n},), got {fd.shape!r}"
            )
        if not np.all(np.isfinite(fd)) or np.any(fd <= 0):
            raise DataError(
                f"{self.name}: focus distances must be finite and > 0 m, got {fd.tolist()!r}"
            )
        object.__setattr__(self, "focus_distances_m", fd)
        if self.depth_m is not None:
            _check_map(self.name, "depth_m", self.depth_m, (h, w))
        if self.disparity_px is not None:
            _check_map(self.name, "disparity_px", self.disparity_px, (h, w))
        if self.gt_is_disparity and self.disparity_px is None:
            raise DataError(f"{self.name}: gt_is_disparity is set but disparity_px is None")
        if self.all_in_focus is not None and _check_rgb(
            self.name, "all_in_focus", self.all_in_focus
        ) != (h, w):
            raise DataError(
                f"{self.name}: all_in_focus is {self.all_in_focus.shape[:2]!r} px, images are "
                f"{(h, w)!r}"
            )
        _check_intrinsics(self.name, self.intrinsics, (h, w))
        _check_positive(self.name, "f_number", self.f_number)
        _check_positive(self.name, "focal_length_m", self.focal_length_m)

    @property
    def size(self) -> int:
        """Number of images N."""
        return int(self.images.shape[0])

    @property
    def has_ground_truth(self) -> bool:
        """Whether the sample carries depth or disparity ground truth."""
        return self.depth_m is not None or self.disparity_px is not None
