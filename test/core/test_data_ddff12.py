"""DDFF-12 loader: HDF5 stacks, disparity ground truth, documented focus constants."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.data.ddff12 import DDFF12_FOCUS_DISTANCES_M
from dfdnet_core.errors import ConfigError, DataError

# f * b from IntParamLF.mat: 521.4052 px * (1982.0250823695178 / 7317.020641763665) mm
F_TIMES_B = 521.4052 * 1982.0250823695178 / 7317.020641763665 * 1e-3


def _trainval(path: Path, n: int = 2, h: int = 6, w: int = 8, slices: int = 10) -> np.ndarray:
    stack = np.zeros((n, slices, h, w, 3), np.uint8)
    for i in range(slices):
        stack[:, i] = i * 20  # slice i has grey level 20 i
    disp = np.full((n, h, w), 0.1, np.float32)
    disp[:, 0, 0] = 0.0  # no ground truth
    with h5py.File(path, "w") as f:
        f.create_dataset("stack_train", data=stack)
        f.create_dataset("disp_train", data=disp)
        f.create_dataset("stack_val", data=stack[:1])
        f.create_dataset("disp_val", data=disp[:1])
    return disp


def test_ddff12_focus_distances_follow_disparity_constants() -> None:
    assert DDFF12_FOCUS_DISTANCES_M[0] == pytest.approx(F_TIMES_B / 0.28)
    assert DDFF12_FOCUS_DISTANCES_M[-1] == pytest.approx(F_TIMES_B / 0.02)
    assert 0.50 < DDFF12_FOCUS_DISTANCES_M[0] < 0.51 and 7.0 < DDFF12_FOCUS_DISTANCES_M[-1] < 7.1
    assert list(DDFF12_FOCUS_DISTANCES_M) == sorted(DDFF12_FOCUS_DISTANCES_M)  # near to far


def test_ddff12_val_sample_carries_disparity_flag_and_depth(tmp_path: Path) -> None:
    _trainval(tmp_path / "ddff-dataset-trainval.h5")
    ds = open_dataset("ddff12", tmp_path, split="val")
    sample = ds[0]
    assert len(ds) == 1 and sample.name == "val/0000"
    assert sample.images.shape == (10, 6, 8, 3) and sample.images[3, 0, 0, 0] == 60
    assert sample.gt_is_disparity and sample.disparity_px is not None and sample.depth_m is not None
    assert sample.disparity_px[1, 1] == pytest.approx(0.1)
    assert sample.depth_m[1, 1] == pytest.approx(F_TIMES_B / 0.1, rel=1e-6)  # 1.4124 m
    assert np.isnan(sample.disparity_px[0, 0]) and np.isnan(sample.depth_m[0, 0])
    k = sample.intrinsics
    assert k is not None and k.width_px == 8 and k.height_px == 6


def test_ddff12_slice_indices_select_images_and_focus(tmp_path: Path) -> None:
    _trainval(tmp_path / "trainval.h5")
    sample = open_dataset(
        "ddff12", tmp_path / "trainval.h5", split="train", slice_indices=[0, 2, 4, 6, 9]
    )[1]
    assert sample.images[:, 0, 0, 0].tolist() == [0, 40, 80, 120, 180]
    assert sample.focus_distances_m.tolist() == [
        DDFF12_FOCUS_DISTANCES_M[i] for i in (0, 2, 4, 6, 9)
    ]


def test_ddff12_test_split_has_no_ground_truth(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "ddff-dataset-test.h5", "w") as f:
        f.create_dataset("stack_test", data=np.zeros((3, 10, 4, 4, 3), np.uint8))
    sample = open_dataset("ddff12", tmp_path, split="test")[2]
    assert not sample.has_ground_truth and not sample.gt_is_disparity


def test_ddff12_raises_on_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing DDFF-12 HDF5 file"):
        open_dataset("ddff12", tmp_path, split="val")


def test_ddff12_raises_on_nine_slices(tmp_path: Path) -> None:
    _trainval(tmp_path / "ddff-dataset-trainval.h5", slices=9)
    with pytest.raises(DataError, match=r"expected \(N, 10, H, W, 3\) uint8"):
        open_dataset("ddff12", tmp_path)


def test_ddff12_raises_on_truncated_file(tmp_path: Path) -> None:
    path = tmp_path / "ddff-dataset-trainval.h5"
    _trainval(path)
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(DataError, match="not a readable HDF5 file"):
        open_dataset("ddff12", tmp_path)


def test_ddff12_raises_on_missing_disparity_key(tmp_path: Path) -> None:
    with h5py.File(tmp_path / "ddff-dataset-trainval.h5", "w") as f:
        f.create_dataset("stack_val", data=np.zeros((1, 10, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="has no 'disp_val'"):
        open_dataset("ddff12", tmp_path)


def test_ddff12_raises_on_bad_slice_index(tmp_path: Path) -> None:
    _trainval(tmp_path / "ddff-dataset-trainval.h5")
    with pytest.raises(ConfigError, match=r"slice_indices must be indices in 0\.\.9, got \[10\]"):
        open_dataset("ddff12", tmp_path, slice_indices=[10])
