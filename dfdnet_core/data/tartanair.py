"""TartanAir (Wang et al., IROS 2020; castacks/tartanair_tools) RGB-D frames of the left camera.

On-disk format (tartanair_tools ``data_type.md``): each trajectory folder
(``<env>/<Easy|Hard>/Pxxx``) holds ``image_left/NNNNNN_left.png`` (640x480 RGB PNG) and
``depth_left/NNNNNN_left_depth.npy`` (640x480 float32 depth in **metres**). The depth is AirSim's
planar depth ("DepthPlanar", tartanair_tools issue #67); the sky is a large finite value (about
10000 m) rather than infinity. Intrinsics are fixed: fx = fy = 320, cx = 320, cy = 240 px.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.base import IndexedDataset
from dfdnet_core.data.files import clean_depth, read_npy, read_rgb, require_file
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import ConfigError, DataError

TARTANAIR_INTRINSICS = CameraIntrinsics(640, 480, 320.0, 320.0, 320.0, 240.0)


@dataclass(frozen=True)
class _Frame:
    rgb: Path
    depth: Path
    name: str


class TartanAirDataset(IndexedDataset[RgbdSample, _Frame]):
    """Left-camera frames of every trajectory under ``root``.

    Args:
        root: a trajectory folder or any folder above trajectories (searched recursively for
            ``image_left``).
        max_depth_m: depth beyond this (metres) becomes NaN, e.g. 1000 to drop the sky; None keeps
            all.

    Raises:
        DataError: no ``image_left`` folders, or an image without its ``*_left_depth.npy``.
    """

    name = "tartanair"
    kind = "rgbd"

    def __init__(self, root: str | Path, max_depth_m: float | None = None) -> None:
        super().__init__(root)
        if max_depth_m is not None and not max_depth_m > 0:
            raise ConfigError(f"tartanair: max_depth_m must be > 0 or None, got {max_depth_m!r}")
        self.max_depth_m = max_depth_m
        for image_dir in sorted(p for p in self.root.rglob("image_left") if p.is_dir()):
            trajectory = image_dir.parent
            for rgb in sorted(image_dir.glob("*_left.png")):
                depth = require_file(
                    trajectory / "depth_left" / f"{rgb.stem}_depth.npy", "TartanAir depth file"
                )
                rel = trajectory.relative_to(self.root).as_posix()
                self._items.append(
                    _Frame(rgb, depth, f"{rel}/{rgb.stem}" if rel != "." else rgb.stem)
                )
        self._require_items("TartanAir frames (image_left/*_left.png)")

    def _load(self, item: _Frame) -> RgbdSample:
        rgb = read_rgb(item.rgb, "TartanAir image")
        depth = read_npy(item.depth, "TartanAir depth")
        if depth.shape != rgb.shape[:2] or not np.issubdtype(depth.dtype, np.floating):
            raise DataError(
                f"TartanAir depth {str(item.depth)!r} is {depth.dtype} {depth.shape!r}, expected "
                f"float {rgb.shape[:2]!r}"
            )
        depth_m = clean_depth(depth)
        if self.max_depth_m is not None:
            depth_m[depth_m > self.max_depth_m] = np.nan
        h, w = rgb.shape[:2]
        k = TARTANAIR_INTRINSICS
        intrinsics = k if (w, h) == (k.width_px, k.height_px) else k.scaled(w, h)
        return RgbdSample(rgb, depth_m, intrinsics, item.name)
