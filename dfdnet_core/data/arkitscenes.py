"""ARKitScenes (Baruch et al., NeurIPS 2021 datasets track; apple/ARKitScenes) RGB-D frames.

On-disk format (ARKitScenes DATA.md, its depth_upsampling loader, and the raw/3dod layouts):

- a video folder holds one sub-folder per asset; file names are ``<video_id>_<timestamp>.png`` and
  the same name is used in every asset folder;
- colour: ``lowres_wide/`` (256x192 RGB PNG) or ``wide/`` (1920x1440); the upsampling release also
  calls it ``color/``; JPG is accepted too;
- depth: ``lowres_depth/`` (LiDAR, 256x192) or ``highres_depth/`` (laser-scan mesh, 1920x1440),
  single-channel uint16 PNG in **millimetres**, 0 = no depth;
- intrinsics (optional): ``<colour folder>_intrinsics/<same stem>.pincam``, one text line ``width
  height fx fy cx cy`` (pixels). In the raw release a .pincam stem can differ from the frame's by
  about 1 ms; the nearest one within ``max_intrinsics_gap_s`` is used.

Pairs used: ``highres_depth`` with ``wide`` (or ``color``) when present, otherwise ``lowres_depth``
with ``lowres_wide``. Colour and depth must have the same size (no resampling here). Frames are not
rotated to "sky up" (the ``sky_direction`` of metadata.csv is not applied).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.base import IndexedDataset, check_choice
from dfdnet_core.data.files import mm_to_m, read_image_raw, read_numbers, read_rgb
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import ConfigError, DataError

_PAIRS = {
    "highres": ("highres_depth", ("wide", "color")),
    "lowres": ("lowres_depth", ("lowres_wide",)),
}


@dataclass(frozen=True)
class _Frame:
    rgb: Path
    depth: Path
    pincam: Path | None
    name: str


def _timestamp(stem: str) -> float | None:
    try:
        return float(stem.rsplit("_", 1)[-1])
    except ValueError:
        return None


def read_pincam(path: Path) -> CameraIntrinsics:
    """Intrinsics from an ARKitScenes ``.pincam`` file (``width height fx fy cx cy``)."""
    values = read_numbers(path, "ARKitScenes .pincam file")
    if len(values) != 6:
        raise DataError(
            f"ARKitScenes .pincam file {str(path)!r} holds {len(values)} numbers, expected 6 "
            "(width height fx fy cx cy)"
        )
    w, h, fx, fy, cx, cy = values
    try:
        return CameraIntrinsics(round(w), round(h), fx, fy, cx, cy)
    except ConfigError as exc:
        raise DataError(f"ARKitScenes .pincam file {str(path)!r}: {exc}") from exc


class ARKitScenesDataset(IndexedDataset[RgbdSample, _Frame]):
    """ARKitScenes frames of every video folder under ``root``.

    Args:
        root: a video folder, or any folder above video folders (searched recursively).
        resolution: "auto" (highres when present, else lowres), "highres" or "lowres".
        max_intrinsics_gap_s: largest time difference between a frame and its .pincam file, seconds.

    Raises:
        DataError: no depth folder with a matching colour folder, or a depth frame without its
            colour frame.
    """

    name = "arkitscenes"
    kind = "rgbd"

    def __init__(
        self, root: str | Path, resolution: str = "auto", max_intrinsics_gap_s: float = 0.005
    ) -> None:
        super().__init__(root)
        check_choice(self.name, "resolution", resolution, ("auto", "highres", "lowres"))
        if not max_intrinsics_gap_s >= 0:
            raise ConfigError(
                f"arkitscenes: max_intrinsics_gap_s must be >= 0, got {max_intrinsics_gap_s!r}"
            )
        self.max_intrinsics_gap_s = float(max_intrinsics_gap_s)
        order = ("highres", "lowres") if resolution == "auto" else (resolution,)
        videos = sorted(
            {p.parent for key in order for p in self.root.rglob(_PAIRS[key][0]) if p.is_dir()}
        )
        for video in videos:
            for key in order:
                depth_dir = video / _PAIRS[key][0]
                rgb_dir = next((video / c for c in _PAIRS[key][1] if (video / c).is_dir()), None)
                if depth_dir.is_dir() and rgb_dir is not None:
                    self._add_video(video, depth_dir, rgb_dir)
                    break
        self._require_items(
            "ARKitScenes depth folders (lowres_depth/ or highres_depth/) with colour frames"
        )

    def _add_video(self, video: Path, depth_dir: Path, rgb_dir: Path) -> None:
        pincam_dir = rgb_dir.parent / f"{rgb_dir.name}_intrinsics"
        pincams = {}
        if pincam_dir.is_dir():
            for p in pincam_dir.glob("*.pincam"):
                ts = _timestamp(p.stem)
                if ts is not None:
                    pincams[ts] = p
        stamps = np.array(sorted(pincams), dtype=np.float64)
        for depth in sorted(depth_dir.glob("*.png")):
            rgb = next(
                (
                    rgb_dir / f"{depth.stem}{s}"
                    for s in (".png", ".jpg")
                    if (rgb_dir / f"{depth.stem}{s}").is_file()
                ),
                None,
            )
            if rgb is None:
                raise DataError(
                    f"arkitscenes: depth frame {str(depth)!r} has no colour frame in "
                    f"{str(rgb_dir)!r}"
                )
            pincam = None
            ts = _timestamp(depth.stem)
            if ts is not None and stamps.size:
                nearest = float(stamps[np.argmin(np.abs(stamps - ts))])
                if abs(nearest - ts) <= self.max_intrinsics_gap_s:
                    pincam = pincams[nearest]
            self._items.append(_Frame(rgb, depth, pincam, f"{video.name}/{depth.stem}"))

    def _load(self, item: _Frame) -> RgbdSample:
        rgb = read_rgb(item.rgb, "ARKitScenes colour frame")
        depth_mm = read_image_raw(item.depth, "ARKitScenes depth PNG (uint16 mm)", np.uint16)
        if depth_mm.shape != rgb.shape[:2]:
            raise DataError(
                f"arkitscenes: depth {str(item.depth)!r} is {depth_mm.shape!r} but colour "
                f"{str(item.rgb)!r} is {rgb.shape[:2]!r}; pair lowres_depth with lowres_wide"
            )
        intrinsics = None
        if item.pincam is not None:
            intrinsics = read_pincam(item.pincam)
            h, w = rgb.shape[:2]
            if (intrinsics.width_px, intrinsics.height_px) != (w, h):
                intrinsics = intrinsics.scaled(w, h)
        return RgbdSample(rgb, mm_to_m(depth_mm), intrinsics, item.name)
