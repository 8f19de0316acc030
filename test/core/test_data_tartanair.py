"""TartanAir loader: image_left PNGs, depth_left .npy in metres, fixed intrinsics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.errors import DataError


def _trajectory(root: Path, depth: np.ndarray, h: int = 480, w: int = 640) -> Path:
    traj = root / "abandonedfactory" / "Easy" / "P000"
    (traj / "image_left").mkdir(parents=True)
    (traj / "depth_left").mkdir()
    cv2.imwrite(
        str(traj / "image_left" / "000000_left.png"), np.full((h, w, 3), (255, 0, 0), np.uint8)
    )
    np.save(traj / "depth_left" / "000000_left_depth.npy", depth)
    return traj


def test_tartanair_reads_metric_depth_and_fixed_intrinsics(tmp_path: Path) -> None:
    depth = np.full((480, 640), 4.25, np.float32)
    depth[0, :10] = 10000.0  # the sky sphere
    _trajectory(tmp_path, depth)
    sample = open_dataset("tartanair", tmp_path)[0]
    assert sample.name == "abandonedfactory/Easy/P000/000000_left"
    assert sample.depth_m[100, 100] == pytest.approx(4.25)
    assert sample.depth_m[0, 0] == pytest.approx(10000.0)
    assert sample.rgb[0, 0].tolist() == [0, 0, 255]
    k = sample.intrinsics
    assert k is not None and (k.fx_px, k.fy_px, k.cx_px, k.cy_px) == (320.0, 320.0, 320.0, 240.0)


def test_tartanair_max_depth_turns_sky_into_nan(tmp_path: Path) -> None:
    depth = np.full((48, 64), 3.0, np.float32)
    depth[0, 0] = 10000.0
    _trajectory(tmp_path, depth, 48, 64)
    sample = open_dataset("tartanair", tmp_path, max_depth_m=1000.0)[0]
    assert np.isnan(sample.depth_m[0, 0]) and sample.depth_m[1, 1] == 3.0
    assert sample.intrinsics is not None and sample.intrinsics.fx_px == pytest.approx(32.0)


def test_tartanair_raises_on_missing_depth(tmp_path: Path) -> None:
    traj = _trajectory(tmp_path, np.ones((48, 64), np.float32), 48, 64)
    (traj / "depth_left" / "000000_left_depth.npy").unlink()
    with pytest.raises(DataError, match="missing TartanAir depth file"):
        open_dataset("tartanair", tmp_path)


def test_tartanair_raises_on_depth_of_other_shape(tmp_path: Path) -> None:
    _trajectory(tmp_path, np.ones((48, 63), np.float32), 48, 64)
    with pytest.raises(DataError, match=r"is float32 \(48, 63\), expected float \(48, 64\)"):
        open_dataset("tartanair", tmp_path)[0]


def test_tartanair_raises_on_truncated_npy(tmp_path: Path) -> None:
    traj = _trajectory(tmp_path, np.ones((48, 64), np.float32), 48, 64)
    path = traj / "depth_left" / "000000_left_depth.npy"
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(DataError, match=r"is not a readable \.npy array"):
        open_dataset("tartanair", tmp_path)[0]
