"""NYUv2 labelled loader: MATLAB v7.3 (HDF5, transposed arrays), eval crop, intrinsics, splits."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy.io import savemat

from dfdnet_core.data import open_dataset
from dfdnet_core.errors import DataError


def _labeled(path: Path, rgb_hwc: list[np.ndarray], depth_hw: list[np.ndarray]) -> None:
    """Write arrays as MATLAB v7.3 stores H x W x 3 x N images: HDF5 sees (N, 3, W, H)."""
    images = np.stack([img.transpose(2, 1, 0) for img in rgb_hwc])
    depths = np.stack([d.T for d in depth_hw])
    with h5py.File(path, "w") as f:
        f.create_dataset("images", data=images.astype(np.uint8))
        f.create_dataset("depths", data=depths.astype(np.float32))


def _scene(h: int = 480, w: int = 640) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.zeros((h, w, 3), np.uint8)
    rgb[min(10, h - 1), min(20, w - 1)] = (1, 2, 3)
    depth = np.linspace(0.5, 9.5, h * w, dtype=np.float32).reshape(h, w)
    return rgb, depth


def test_nyuv2_undoes_matlab_transpose(tmp_path: Path) -> None:
    rgb, depth = _scene()
    _labeled(tmp_path / "nyu_depth_v2_labeled.mat", [rgb, rgb], [depth, depth])
    ds = open_dataset("nyuv2", tmp_path)
    sample = ds[1]
    assert len(ds) == 2 and sample.name == "0001"
    assert sample.rgb.shape == (480, 640, 3) and sample.rgb[10, 20].tolist() == [1, 2, 3]
    assert np.array_equal(sample.depth_m, depth)
    k = sample.intrinsics
    assert k is not None and k.fx_px == pytest.approx(518.8579, abs=1e-4)
    assert k.cx_px == pytest.approx(325.5824, abs=1e-4)


def test_nyuv2_eval_crop_and_shifted_intrinsics(tmp_path: Path) -> None:
    rgb, depth = _scene()
    _labeled(tmp_path / "nyu_depth_v2_labeled.mat", [rgb], [depth])
    sample = open_dataset("nyuv2", tmp_path / "nyu_depth_v2_labeled.mat", eval_crop=True)[0]
    assert sample.rgb.shape == (426, 560, 3)
    assert sample.depth_m[0, 0] == depth[45, 41]
    k = sample.intrinsics
    assert k is not None and k.cx_px == pytest.approx(325.5824 - 41, abs=1e-4)
    assert k.cy_px == pytest.approx(253.7362 - 45, abs=1e-4)


def test_nyuv2_test_split_uses_one_based_indices(tmp_path: Path) -> None:
    rgb, depth = _scene(4, 6)
    _labeled(tmp_path / "nyu_depth_v2_labeled.mat", [rgb] * 3, [depth, depth + 1, depth + 2])
    savemat(
        tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [2]]), "testNdxs": np.array([[3]])}
    )
    ds = open_dataset("nyuv2", tmp_path, split="test")
    assert len(ds) == 1 and ds[0].depth_m[0, 0] == pytest.approx(depth[0, 0] + 2)


def test_nyuv2_raises_on_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"missing NYUv2 labelled \.mat"):
        open_dataset("nyuv2", tmp_path)


def test_nyuv2_raises_on_untransposed_layout(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "nyu_depth_v2_labeled.mat", "w") as f:
        f.create_dataset(
            "images", data=np.zeros((1, 4, 6, 3), np.uint8)
        )  # (N, H, W, 3): not MATLAB's
        f.create_dataset("depths", data=np.zeros((1, 6, 4), np.float32))
    with pytest.raises(DataError, match=r"expected \(N, 3, W, H\) uint8"):
        open_dataset("nyuv2", tmp_path)


def test_nyuv2_raises_on_truncated_file(tmp_path: Path) -> None:
    rgb, depth = _scene(4, 6)
    path = tmp_path / "nyu_depth_v2_labeled.mat"
    _labeled(path, [rgb], [depth])
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        open_dataset("nyuv2", tmp_path)


def test_nyuv2_raises_on_missing_splits(tmp_path: Path) -> None:
    rgb, depth = _scene(4, 6)
    _labeled(tmp_path / "nyu_depth_v2_labeled.mat", [rgb], [depth])
    with pytest.raises(DataError, match=r"missing NYUv2 splits\.mat"):
        open_dataset("nyuv2", tmp_path, split="train")
