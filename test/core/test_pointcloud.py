"""Tests of back-projection and the PointCloud2 byte layout (dfdnet_core.pointcloud)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError
from dfdnet_core.pointcloud import (
    POINTFIELD_FLOAT32,
    PointFieldSpec,
    depth_to_points,
    pack_rgb_float32,
    pointcloud2_fields_and_data,
    points_reproject,
)

ROOT = Path(__file__).resolve().parents[2]
K = CameraIntrinsics(width_px=4, height_px=3, fx_px=2.0, fy_px=4.0, cx_px=1.5, cy_px=1.0)


def test_depth_to_points_matches_pinhole_by_hand() -> None:
    depth = np.full((3, 4), 2.0, np.float32)
    pts = depth_to_points(depth, K)
    assert pts.shape == (3, 4, 3) and pts.dtype == np.float32
    # u = 3, v = 0: x = (3 - 1.5) * 2 / 2 = 1.5, y = (0 - 1) * 2 / 4 = -0.5.
    np.testing.assert_allclose(pts[0, 3], [1.5, -0.5, 2.0])
    # u = 0, v = 2: x = -1.5, y = 0.5.
    np.testing.assert_allclose(pts[2, 0], [-1.5, 0.5, 2.0])
    # The principal point row/column: y = 0 on row v = cy = 1.
    np.testing.assert_allclose(pts[1, :, 1], 0.0)


def test_fronto_parallel_plane_has_constant_z_and_even_spacing() -> None:
    intrinsics = CameraIntrinsics.from_horizontal_fov(64, 48, 70.0)
    pts = depth_to_points(np.full((48, 64), 1.7, np.float32), intrinsics)
    np.testing.assert_allclose(pts[..., 2], 1.7)
    np.testing.assert_allclose(np.diff(pts[..., 0], axis=1), 1.7 / intrinsics.fx_px, rtol=1e-5)
    np.testing.assert_allclose(np.diff(pts[..., 1], axis=0), 1.7 / intrinsics.fy_px, rtol=1e-5)


def test_no_depth_gives_nan_points() -> None:
    depth = np.full((3, 4), 1.0, np.float32)
    depth[0, 0] = np.nan
    depth[1, 2] = np.inf
    pts = depth_to_points(depth, K)
    assert np.isnan(pts[0, 0]).all() and np.isnan(pts[1, 2]).all()
    assert np.isfinite(pts).sum() == 3 * 10


def test_reprojection_round_trip() -> None:
    rng = np.random.default_rng(0)
    intrinsics = CameraIntrinsics(40, 30, 55.0, 57.0, 19.2, 14.7)
    depth = rng.uniform(0.3, 5.0, (30, 40)).astype(np.float32)
    depth[3, 4] = np.nan
    u, v, z = points_reproject(depth_to_points(depth, intrinsics), intrinsics)
    vv, uu = np.mgrid[0:30, 0:40]
    ok = np.isfinite(depth)
    np.testing.assert_allclose(u[ok], uu[ok], atol=1e-4)
    np.testing.assert_allclose(v[ok], vv[ok], atol=1e-4)
    np.testing.assert_allclose(z[ok], depth[ok], rtol=1e-6)
    assert np.isnan(u[3, 4]) and np.isnan(z[3, 4])


def test_pointcloud2_layout_without_colour() -> None:
    pts = depth_to_points(np.full((3, 4), 2.0, np.float32), K)
    fields, step, data = pointcloud2_fields_and_data(pts)
    assert step == 16
    assert fields == [
        PointFieldSpec("x", 0, POINTFIELD_FLOAT32, 1),
        PointFieldSpec("y", 4, POINTFIELD_FLOAT32, 1),
        PointFieldSpec("z", 8, POINTFIELD_FLOAT32, 1),
    ]
    assert len(data) == 3 * 4 * 16
    record = np.frombuffer(
        data, dtype=np.dtype({"names": ["x", "y", "z"], "formats": ["<f4"] * 3, "offsets": [0, 4, 8], "itemsize": 16})
    )
    np.testing.assert_array_equal(record["x"].reshape(3, 4), pts[..., 0])
    np.testing.assert_array_equal(record["z"].reshape(3, 4), pts[..., 2])
    # Point (row 0, col 3) starts at byte 3 * 16 = 48.
    assert np.frombuffer(data[48:60], "<f4").tolist() == [1.5, -0.5, 2.0]


def test_pointcloud2_layout_with_colour_packs_rgb_like_pcl() -> None:
    depth = np.full((3, 4), 1.0, np.float32)
    depth[2, 1] = np.nan
    pts = depth_to_points(depth, K)
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[0, 0] = (255, 128, 1)
    rgb[1, 2] = (10, 20, 30)
    fields, step, data = pointcloud2_fields_and_data(pts, rgb)
    assert step == 32
    assert fields[-1] == PointFieldSpec("rgb", 16, POINTFIELD_FLOAT32, 1)
    assert len(data) == 3 * 4 * 32
    # Little-endian uint32 0x00FF8001: bytes b, g, r, 0 at offsets 16..19 of the first point.
    assert data[16:20] == bytes([1, 128, 255, 0])
    words = np.frombuffer(data, "<u4").reshape(3, 4, 8)
    packed = words[..., 4]
    assert ((packed[1, 2] >> 16) & 255, (packed[1, 2] >> 8) & 255, packed[1, 2] & 255) == (10, 20, 30)
    floats = np.frombuffer(data, "<f4").reshape(3, 4, 8)
    assert np.isnan(floats[2, 1, :3]).all()  # organised cloud: the point without depth stays, as NaN
    np.testing.assert_array_equal(floats[..., 2][~np.isnan(depth)], 1.0)
    assert pack_rgb_float32(rgb).view(np.uint32)[0, 0] == 0x00FF8001


def test_pointcloud_raises_on_bad_shapes() -> None:
    with pytest.raises(ConfigError, match="depth image has shape \\(2, 4\\) but the intrinsics describe"):
        depth_to_points(np.ones((2, 4)), K)
    with pytest.raises(ConfigError, match="points must be an organised \\(H, W, 3\\) array, got shape \\(12, 3\\)"):
        pointcloud2_fields_and_data(np.zeros((12, 3), np.float32))
    with pytest.raises(ConfigError, match="rgb_uint8 must be a \\(3, 4, 3\\) uint8 array"):
        pointcloud2_fields_and_data(np.zeros((3, 4, 3), np.float32), np.zeros((3, 4, 3), np.float32))
    with pytest.raises(ConfigError, match="points must have shape \\(..., 3\\), got \\(3, 4\\)"):
        points_reproject(np.zeros((3, 4)), K)
    with pytest.raises(ConfigError, match="rgb must be a \\(..., 3\\) uint8 array"):
        pack_rgb_float32(np.zeros((2, 4), np.uint8))


def test_pointcloud_benchmark_smallest_case_runs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_pointcloud", ROOT / "benchmarks" / "pointcloud.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--sizes", "32x24", "--runs", "2", "--out-dir", str(tmp_path)]) == 0
    doc = json.loads((tmp_path / "pointcloud.json").read_text())
    assert doc["bytes_xyz_32x24"] == 32 * 24 * 16 and doc["bytes_xyzrgb_32x24"] == 32 * 24 * 32
    assert doc["ms_total_xyzrgb_median_32x24"] > 0 and "machine" in doc and "command" in doc and "date" in doc
    assert "| 32x24 |" in (tmp_path / "pointcloud.md").read_text() and "| 32x24 |" in capsys.readouterr().out
