"""iBims-1 loader: MATLAB v5 .mat files with a struct 'data' (rgb, depth, masks, calib)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from scipy.io import savemat

from dfdnet_core.data import open_dataset
from dfdnet_core.errors import DataError

CALIB = np.array([[559.62, 0.0, 361.87], [0.0, 558.41, 241.38], [0.0, 0.0, 1.0]])


def _mat(folder: Path, name: str, **override: np.ndarray) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    h, w = 6, 8
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[..., 0] = 200
    depth = np.full((h, w), 3.5, np.float32)
    depth[0, 0] = 0.0  # missing
    mask_invalid = np.ones((h, w), np.uint8)
    mask_invalid[1, 1] = 0  # invalid
    mask_transp = np.ones((h, w), np.uint8)
    mask_transp[2, 2] = 0  # glass
    data = {
        "rgb": rgb,
        "depth": depth,
        "mask_invalid": mask_invalid,
        "mask_transp": mask_transp,
        "edges": np.zeros((h, w), np.uint8),
        "calib": CALIB,
    }
    data.update(override)
    path = folder / f"{name}.mat"
    savemat(path, {"data": data})
    return path


def test_ibims_reads_depth_masks_and_calibration(tmp_path: Path) -> None:
    _mat(tmp_path / "ibims1_core_mat", "corridor_01")
    (tmp_path / "imagelist.txt").write_text("corridor_01\n")
    sample = open_dataset("ibims1", tmp_path)[0]
    assert sample.name == "corridor_01"
    assert sample.depth_m[3, 3] == pytest.approx(3.5)
    assert (
        np.isnan(sample.depth_m[0, 0])
        and np.isnan(sample.depth_m[1, 1])
        and np.isnan(sample.depth_m[2, 2])
    )
    assert np.isfinite(sample.depth_m).sum() == 6 * 8 - 3
    assert sample.rgb[0, 0].tolist() == [200, 0, 0]
    k = sample.intrinsics
    assert k is not None and (k.fx_px, k.fy_px, k.cx_px, k.cy_px) == (
        559.62,
        558.41,
        361.87,
        241.38,
    )


def test_ibims_can_keep_masked_pixels(tmp_path: Path) -> None:
    _mat(tmp_path, "a")
    sample = open_dataset("ibims1", tmp_path, apply_masks=False)[0]
    assert sample.depth_m[1, 1] == pytest.approx(3.5) and np.isnan(sample.depth_m[0, 0])


def test_ibims_raises_on_listed_but_missing_file(tmp_path: Path) -> None:
    _mat(tmp_path / "ibims1_core_mat", "a")
    (tmp_path / "imagelist.txt").write_text("a\nb\n")
    with pytest.raises(DataError, match=r"missing iBims-1 \.mat file"):
        open_dataset("ibims1", tmp_path)


def test_ibims_raises_on_truncated_mat(tmp_path: Path) -> None:
    path = _mat(tmp_path, "a")
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(DataError, match="not a readable MATLAB v5 file"):
        open_dataset("ibims1", tmp_path)[0]


def test_ibims_raises_on_missing_field(tmp_path: Path) -> None:
    savemat(tmp_path / "a.mat", {"data": {"depth": np.ones((2, 2))}})
    with pytest.raises(DataError, match="struct 'data' has no field 'rgb'"):
        open_dataset("ibims1", tmp_path)[0]


def test_ibims_raises_on_depth_of_other_shape(tmp_path: Path) -> None:
    _mat(tmp_path, "a", depth=np.ones((6, 7), np.float32))
    with pytest.raises(DataError, match=r"depth is float32 \(6, 7\), expected \(6, 8\)"):
        open_dataset("ibims1", tmp_path)[0]
