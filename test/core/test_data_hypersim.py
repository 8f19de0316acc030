"""Hypersim loader: HDF5 layout, tone mapping, and distance-to-centre -> planar depth."""

from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.data.hypersim import tone_map_hypersim
from dfdnet_core.errors import DataError


def _write(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("dataset", data=array)


def _frame(
    root: Path, color: np.ndarray, distance: np.ndarray, entity: np.ndarray | None = None
) -> Path:
    images = root / "ai_001_001" / "images"
    _write(images / "scene_cam_00_final_hdf5" / "frame.0000.color.hdf5", color)
    _write(images / "scene_cam_00_geometry_hdf5" / "frame.0000.depth_meters.hdf5", distance)
    if entity is not None:
        _write(images / "scene_cam_00_geometry_hdf5" / "frame.0000.render_entity_id.hdf5", entity)
    return images


def test_hypersim_distance_of_fronto_parallel_plane_becomes_constant_depth(tmp_path: Path) -> None:
    # A wall 2.5 m in front of the documented camera (1024x768, 60 deg horizontal FOV): the stored
    # "depth_meters" is the distance to the camera centre, which grows towards the corners.
    w, h, z_m = 1024, 768, 2.5
    f_px = (w / 2) / math.tan(math.radians(30.0))
    u = np.arange(w) - (w - 1) / 2
    v = np.arange(h) - (h - 1) / 2
    distance = z_m * np.sqrt(u[None, :] ** 2 + v[:, None] ** 2 + f_px**2) / f_px
    assert distance.max() > 1.2 * z_m  # corners really are further away than the plane
    _frame(tmp_path, np.full((h, w, 3), 0.5, np.float16), distance.astype(np.float32))
    sample = open_dataset("hypersim", tmp_path)[0]
    assert sample.name == "ai_001_001/cam_00/frame.0000"
    assert np.allclose(sample.depth_m, z_m, rtol=1e-5)
    k = sample.intrinsics
    assert k is not None and k.fx_px == pytest.approx(886.81, abs=0.01)
    assert (k.cx_px, k.cy_px) == (511.5, 383.5)


def test_hypersim_tone_map_puts_90th_percentile_at_0_8() -> None:
    # Constant linear grey: p90 = brightness, scaled so that (scale * b) ** (1/2.2) = 0.8 -> 204.
    out = tone_map_hypersim(np.full((4, 4, 3), 0.37, np.float32))
    assert out.dtype == np.uint8 and np.all(out == round(0.8 * 255))


def test_hypersim_entity_mask_excludes_background_from_exposure(tmp_path: Path) -> None:
    color = np.full((8, 8, 3), 0.2, np.float16)
    color[:, :4] = 50.0  # very bright "sky" without geometry
    entity = np.ones((8, 8), np.int32)
    entity[:, :4] = -1
    distance = np.full((8, 8), 3.0, np.float16)
    distance[:, :4] = np.nan
    _frame(tmp_path, color, distance, entity)
    sample = open_dataset("hypersim", tmp_path)[0]
    assert np.all(sample.rgb[:, 4:] == 204)  # exposure set by the valid pixels only
    assert np.all(sample.rgb[:, :4] == 255)
    assert np.isnan(sample.depth_m[:, :4]).all() and np.isfinite(sample.depth_m[:, 4:]).all()
    unmasked = open_dataset("hypersim", tmp_path, use_entity_mask=False)[0]
    assert unmasked.rgb[0, 4, 0] < 204  # with the sky counted the objects come out darker


def test_hypersim_raises_on_missing_depth_file(tmp_path: Path) -> None:
    images = _frame(tmp_path, np.zeros((4, 4, 3), np.float16), np.ones((4, 4), np.float16))
    (images / "scene_cam_00_geometry_hdf5" / "frame.0000.depth_meters.hdf5").unlink()
    with pytest.raises(DataError, match="missing Hypersim depth_meters file"):
        open_dataset("hypersim", tmp_path)


def test_hypersim_raises_on_truncated_colour_file(tmp_path: Path) -> None:
    images = _frame(tmp_path, np.zeros((16, 16, 3), np.float16), np.ones((16, 16), np.float16))
    color = images / "scene_cam_00_final_hdf5" / "frame.0000.color.hdf5"
    color.write_bytes(color.read_bytes()[:700])
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        open_dataset("hypersim", tmp_path)[0]


def test_hypersim_raises_on_depth_of_other_shape(tmp_path: Path) -> None:
    _frame(tmp_path, np.zeros((4, 4, 3), np.float16), np.ones((4, 5), np.float16))
    with pytest.raises(DataError, match=r"expected \(4, 4\) float"):
        open_dataset("hypersim", tmp_path)[0]


def test_hypersim_raises_on_wrong_key(tmp_path: Path) -> None:
    images = _frame(tmp_path, np.zeros((4, 4, 3), np.float16), np.ones((4, 4), np.float16))
    with h5py.File(images / "scene_cam_00_final_hdf5" / "frame.0000.color.hdf5", "w") as f:
        f.create_dataset("rgb", data=np.zeros((4, 4, 3), np.float16))
    with pytest.raises(DataError, match="has no dataset 'dataset'; it has \\['rgb'\\]"):
        open_dataset("hypersim", tmp_path)[0]
