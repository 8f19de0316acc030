"""Hypersim (Roberts et al., ICCV 2021; apple/ml-hypersim) RGB-D frames.

On-disk format (per the ml-hypersim README and its tone-mapping script):

- ``<scene>/images/scene_cam_XX_final_hdf5/frame.IIII.color.hdf5``: HDF5 dataset ``"dataset"``,
  (768, 1024, 3) float16, *linear HDR* radiance.
- ``<scene>/images/scene_cam_XX_geometry_hdf5/frame.IIII.depth_meters.hdf5``: ``"dataset"``, (768,
  1024) float16. Despite the name this is the Euclidean **distance to the camera centre** in metres
  (ml-hypersim issue #9), not planar depth; NaN where there is no geometry.
- ``.../frame.IIII.render_entity_id.hdf5`` (optional): int, -1 where no object was hit; used as the
  valid mask of the tone mapping, as the Hypersim script does.

Tone mapping (ml-hypersim ``scene_generate_images_tonemap.py``): brightness = 0.3 R + 0.59 G + 0.11
B; scale so that the 90th percentile of the valid pixels' brightness becomes 0.8 after a 1/2.2
gamma, i.e. ``scale = 0.8**2.2 / p90``; output ``clip((scale * rgb) ** (1/2.2), 0, 1)``; scale 0
when p90 < 1e-4.

Camera: the README gives 1024x768 and a 60 degree horizontal field of view (fx = fy = 886.81 px),
principal point at the image centre. Uncertain: some scenes use non-standard (tilt-shift) cameras
listed in ml-hypersim's ``metadata_camera_parameters.csv``; that file is not read here, so those
scenes get a slightly wrong planar depth.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.base import IndexedDataset
from dfdnet_core.data.files import hdf5_dataset, open_hdf5, read_hdf5_array, require_file
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import ConfigError, DataError

HYPERSIM_WIDTH_PX = 1024
HYPERSIM_HEIGHT_PX = 768
HYPERSIM_HFOV_DEG = 60.0


def tone_map_hypersim(
    rgb_linear: npt.NDArray[Any], valid: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.uint8]:
    """Hypersim's percentile tone map of linear HDR RGB (H, W, 3) to uint8 sRGB-like RGB."""
    rgb = np.nan_to_num(np.asarray(rgb_linear, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    gamma = 1.0 / 2.2
    mask = np.ones(rgb.shape[:2], dtype=bool) if valid is None else valid
    if not mask.any():
        scale = 1.0
    else:
        brightness = 0.3 * rgb[..., 0] + 0.59 * rgb[..., 1] + 0.11 * rgb[..., 2]
        p90 = float(np.percentile(brightness[mask], 90))
        scale = 0.0 if p90 < 1e-4 else 0.8 ** (1.0 / gamma) / p90
    mapped = np.clip(np.power(np.maximum(scale * rgb, 0.0), gamma), 0.0, 1.0)
    out: npt.NDArray[np.uint8] = np.round(mapped * 255.0).astype(np.uint8)
    return out


def planar_depth_from_distance(
    distance_m: npt.NDArray[Any], intrinsics: CameraIntrinsics
) -> npt.NDArray[np.float32]:
    """Convert distance to the camera centre (metres) to depth along the optical axis (metres).

    z = distance / |((u - cx)/fx, (v - cy)/fy, 1)| for the pixel centre (u, v). Non-finite or
    non-positive distances become NaN.
    """
    h, w = distance_m.shape
    x = (np.arange(w, dtype=np.float64) - intrinsics.cx_px) / intrinsics.fx_px
    y = (np.arange(h, dtype=np.float64) - intrinsics.cy_px) / intrinsics.fy_px
    norm = np.sqrt(x[None, :] ** 2 + y[:, None] ** 2 + 1.0)
    dist = np.asarray(distance_m, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        depth = np.where(np.isfinite(dist) & (dist > 0), dist / norm, np.nan)
    return depth.astype(np.float32)


@dataclass(frozen=True)
class _Frame:
    color: Path
    depth: Path
    entity: Path
    name: str


class HypersimDataset(IndexedDataset[RgbdSample, _Frame]):
    """Hypersim frames under ``root`` (the data set root, one scene, or one ``images`` folder).

    Args:
        root: folder searched recursively for ``*_final_hdf5/frame.*.color.hdf5``.
        hfov_deg: horizontal field of view in degrees used for the intrinsics (Hypersim: 60).
        use_entity_mask: use ``render_entity_id`` (when present) as the tone-mapping valid mask.

    Raises:
        DataError: no colour frames, or a colour frame without its ``depth_meters`` file.
        ConfigError: ``hfov_deg`` outside (0, 180).
    """

    name = "hypersim"
    kind = "rgbd"

    def __init__(
        self, root: str | Path, hfov_deg: float = HYPERSIM_HFOV_DEG, use_entity_mask: bool = True
    ) -> None:
        super().__init__(root)
        if not 0.0 < hfov_deg < 180.0:
            raise ConfigError(f"hypersim: hfov_deg must be in (0, 180), got {hfov_deg!r}")
        self.hfov_deg = float(hfov_deg)
        self.use_entity_mask = use_entity_mask
        for color in sorted(self.root.rglob("frame.*.color.hdf5")):
            folder = color.parent
            if not folder.name.endswith("_final_hdf5"):
                continue
            geometry = folder.parent / (folder.name[: -len("_final_hdf5")] + "_geometry_hdf5")
            stem = color.name[: -len(".color.hdf5")]
            depth = require_file(
                geometry / f"{stem}.depth_meters.hdf5", "Hypersim depth_meters file"
            )
            scene = folder.parent.parent.name
            camera = folder.name[len("scene_") : -len("_final_hdf5")]
            self._items.append(
                _Frame(
                    color,
                    depth,
                    geometry / f"{stem}.render_entity_id.hdf5",
                    f"{scene}/{camera}/{stem}",
                )
            )
        self._require_items("Hypersim colour frames (*_final_hdf5/frame.*.color.hdf5)")

    def _load(self, item: _Frame) -> RgbdSample:
        color = _read_dataset(item.color, "Hypersim colour")
        distance = _read_dataset(item.depth, "Hypersim depth_meters")
        if color.ndim != 3 or color.shape[2] != 3 or not np.issubdtype(color.dtype, np.floating):
            raise DataError(
                f"Hypersim colour {str(item.color)!r} is {color.dtype} {color.shape!r}, expected "
                "(H, W, 3) float"
            )
        if distance.shape != color.shape[:2] or not np.issubdtype(distance.dtype, np.floating):
            raise DataError(
                f"Hypersim depth_meters {str(item.depth)!r} is {distance.dtype} "
                f"{distance.shape!r}, expected {color.shape[:2]!r} float"
            )
        valid = None
        if self.use_entity_mask and item.entity.is_file():
            entity = _read_dataset(item.entity, "Hypersim render_entity_id")
            if entity.shape != distance.shape:
                raise DataError(
                    f"Hypersim render_entity_id {str(item.entity)!r} has shape {entity.shape!r}, "
                    f"expected {distance.shape!r}"
                )
            valid = entity != -1
        h, w = distance.shape
        intrinsics = CameraIntrinsics.from_horizontal_fov(w, h, self.hfov_deg)
        return RgbdSample(
            tone_map_hypersim(color, valid),
            planar_depth_from_distance(distance, intrinsics),
            intrinsics,
            item.name,
        )


def _read_dataset(path: Path, what: str) -> npt.NDArray[Any]:
    with open_hdf5(path, what) as handle:
        return read_hdf5_array(hdf5_dataset(handle, "dataset", path, what), path, what)
