"""Middlebury 2014 stereo (Scharstein et al., GCPR 2014) as RGB-D: left image and metric depth from
disparity.

On-disk format (Middlebury 2014 page; as in ``/work/shared/data/middlebury_motorcycle``), one folder
per scene:

- ``im0.png``: left colour image;
- ``disp0GT.pfm`` (or ``disp0.pfm``): left disparity in pixels, little-endian PFM, ``inf`` =
  unknown;
- ``calib.txt``: ``key=value`` lines, ``cam0=[f 0 cx; 0 f cy; 0 0 1]`` (pixels), ``doffs``
  (x-difference of the principal points, pixels), ``baseline`` (**millimetres**), ``width``,
  ``height``, ``ndisp``...;
- ``mask0nocc.png`` (optional): 255 = not occluded, 128 = occluded, 0 = no ground truth.

Depth: Z = baseline * f / (d + doffs); with the baseline in mm this is mm, divided by 1000 for
metres.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.base import IndexedDataset, check_choice
from dfdnet_core.data.files import read_image_raw, read_rgb, read_text, require_file
from dfdnet_core.data.pfm import read_pfm
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import ConfigError, DataError

_MATRIX = re.compile(r"^\[(.*)\]$")


def read_calib(path: Path) -> dict[str, float | list[float]]:
    """Parse a Middlebury 2014 ``calib.txt``: numbers, and camera matrices as 9 numbers."""
    out: dict[str, float | list[float]] = {}
    for lineno, line in enumerate(read_text(path, "Middlebury calib.txt").splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise DataError(
                f"Middlebury calib {str(path)!r} line {lineno}: expected key=value, got {line!r}"
            )
        value = value.strip()
        try:
            matrix = _MATRIX.match(value)
            if matrix:
                out[key.strip()] = [float(t) for t in matrix.group(1).replace(";", " ").split()]
            else:
                out[key.strip()] = float(value)
        except ValueError:
            raise DataError(
                f"Middlebury calib {str(path)!r} line {lineno}: {value!r} is not a number"
            ) from None
    return out


def _number(calib: dict[str, float | list[float]], key: str, path: Path) -> float:
    value = calib.get(key)
    if not isinstance(value, float):
        raise DataError(
            f"Middlebury calib {str(path)!r} has no number {key!r}; keys: {sorted(calib)}"
        )
    return value


def depth_from_disparity_m(
    disparity_px: np.ndarray, focal_px: float, baseline_mm: float, doffs_px: float
) -> np.ndarray:
    """Metric depth (metres, float32, NaN where unknown) from Middlebury disparity (pixels)."""
    d = np.asarray(disparity_px, dtype=np.float64) + doffs_px
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(np.isfinite(d) & (d > 0), baseline_mm * focal_px / d / 1000.0, np.nan)
    return z.astype(np.float32)


class Middlebury2014Dataset(IndexedDataset[RgbdSample, Path]):
    """Middlebury 2014 scenes under ``root``.

    Args:
        root: a scene folder (holding ``calib.txt``) or a folder of scene folders.
        mask: "none" (all ground truth) or "nonocc" (keep only non-occluded pixels of
            ``mask0nocc.png``).

    Raises:
        DataError: no scene, missing files, bad calibration, or a disparity map of another size.
    """

    name = "middlebury2014"
    kind = "rgbd"

    def __init__(self, root: str | Path, mask: str = "none") -> None:
        super().__init__(root)
        check_choice(self.name, "mask", mask, ("none", "nonocc"))
        self.mask = mask
        if (self.root / "calib.txt").is_file():
            self._items = [self.root]
        elif self.root.is_dir():
            self._items = sorted(p for p in self.root.iterdir() if (p / "calib.txt").is_file())
        self._require_items("Middlebury scenes (folders with calib.txt)")

    def _load(self, item: Path) -> RgbdSample:
        calib_path = item / "calib.txt"
        calib = read_calib(calib_path)
        cam0 = calib.get("cam0")
        if not isinstance(cam0, list) or len(cam0) != 9:
            raise DataError(
                f"Middlebury calib {str(calib_path)!r}: cam0 must be a 3x3 matrix, got {cam0!r}"
            )
        baseline_mm = _number(calib, "baseline", calib_path)
        doffs_px = _number(calib, "doffs", calib_path)
        rgb = read_rgb(item / "im0.png", "Middlebury im0.png")
        disp_path = item / "disp0GT.pfm" if (item / "disp0GT.pfm").is_file() else item / "disp0.pfm"
        disparity = read_pfm(require_file(disp_path, "Middlebury disparity disp0GT.pfm"))
        h, w = rgb.shape[:2]
        if disparity.shape != (h, w):
            raise DataError(
                f"Middlebury disparity {str(disp_path)!r} is {disparity.shape!r}, im0.png is "
                f"{(h, w)!r}"
            )
        if "width" in calib and int(_number(calib, "width", calib_path)) != w:
            raise DataError(
                f"Middlebury calib {str(calib_path)!r} says width {calib['width']!r}, im0.png is "
                f"{w} px"
            )
        depth_m = depth_from_disparity_m(disparity, cam0[0], baseline_mm, doffs_px)
        if self.mask == "nonocc":
            mask = read_image_raw(
                require_file(item / "mask0nocc.png", "Middlebury mask0nocc.png"),
                "Middlebury mask0nocc.png",
                np.uint8,
            )
            if mask.shape != (h, w):
                raise DataError(
                    f"Middlebury mask {str(item / 'mask0nocc.png')!r} is {mask.shape!r}, expected "
                    f"{(h, w)!r}"
                )
            depth_m[mask != 255] = np.nan
        try:
            intrinsics = CameraIntrinsics(w, h, cam0[0], cam0[4], cam0[2], cam0[5])
        except ConfigError as exc:
            raise DataError(f"Middlebury calib {str(calib_path)!r}: {exc}") from exc
        return RgbdSample(rgb, depth_m, intrinsics, item.name)
