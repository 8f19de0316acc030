"""Sample types, the sequence behaviour of loaders, the registry and the shared file readers."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data import (
    DATASETS,
    RgbdSample,
    SampleIndexError,
    StackSample,
    dataset_options,
    open_dataset,
)
from dfdnet_core.data.files import mm_to_m, read_rgb
from dfdnet_core.errors import ConfigError, DataError


def _rgb(h: int = 4, w: int = 6) -> np.ndarray:
    return np.zeros((h, w, 3), np.uint8)


def test_rgbd_sample_accepts_nan_depth_and_reports_valid_fraction() -> None:
    depth = np.full((4, 6), 2.0, np.float32)
    depth[0] = np.nan
    sample = RgbdSample(_rgb(), depth, CameraIntrinsics(6, 4, 5.0, 5.0, 2.5, 1.5), "a")
    assert sample.valid_fraction == pytest.approx(18 / 24)


def test_rgbd_sample_raises_on_depth_of_other_shape() -> None:
    with pytest.raises(DataError, match=r"depth_m must have shape \(4, 6\)"):
        RgbdSample(_rgb(), np.ones((4, 5), np.float32), None, "a")


def test_rgbd_sample_raises_on_zero_depth_instead_of_nan() -> None:
    with pytest.raises(DataError, match="must be > 0 or NaN"):
        RgbdSample(_rgb(), np.zeros((4, 6), np.float32), None, "a")


def test_rgbd_sample_raises_on_intrinsics_of_other_size() -> None:
    with pytest.raises(DataError, match="intrinsics describe 8x4 px"):
        RgbdSample(_rgb(), np.ones((4, 6), np.float32), CameraIntrinsics(8, 4, 5, 5, 4, 2), "a")


def test_stack_sample_raises_on_focus_count_mismatch() -> None:
    with pytest.raises(DataError, match=r"focus_distances_m must have shape \(2,\)"):
        StackSample(np.zeros((2, 4, 6, 3), np.uint8), np.array([1.0, 2.0, 3.0]), "s")


def test_stack_sample_raises_on_non_positive_focus() -> None:
    with pytest.raises(DataError, match="finite and > 0 m"):
        StackSample(np.zeros((2, 4, 6, 3), np.uint8), np.array([1.0, 0.0]), "s")


def test_stack_sample_raises_when_disparity_flag_has_no_disparity() -> None:
    with pytest.raises(DataError, match="gt_is_disparity is set"):
        StackSample(np.zeros((1, 4, 6, 3), np.uint8), np.array([1.0]), "s", gt_is_disparity=True)


def test_stack_sample_raises_on_uint16_images() -> None:
    with pytest.raises(DataError, match="uint8 RGB"):
        StackSample(np.zeros((1, 4, 6, 3), np.uint16), np.array([1.0]), "s")


def _middlebury_like(root: Path, count: int) -> None:
    """Tiny Middlebury scenes (constant disparity 10 px) used to exercise the sequence behaviour."""
    for i in range(count):
        scene = root / f"scene{i}"
        scene.mkdir(parents=True)
        (scene / "calib.txt").write_text(
            "cam0=[100 0 3; 0 100 2; 0 0 1]\ndoffs=0\nbaseline=100\nwidth=6\n"
        )
        cv2.imwrite(str(scene / "im0.png"), np.full((4, 6, 3), i, np.uint8))
        header = b"Pf\n6 4\n-1.0\n"
        (scene / "disp0GT.pfm").write_bytes(header + np.full(24, 10.0, "<f4").tobytes())


def test_dataset_supports_len_negative_index_and_iteration(tmp_path: Path) -> None:
    _middlebury_like(tmp_path, 3)
    ds = open_dataset("middlebury2014", tmp_path)
    assert len(ds) == 3
    assert ds[-1].name == "scene2"
    assert [s.name for s in ds] == ["scene0", "scene1", "scene2"]
    # 100 px * 100 mm / 10 px = 1000 mm
    assert np.allclose(ds[0].depth_m, 1.0)


def test_dataset_index_out_of_range_is_data_error_and_index_error(tmp_path: Path) -> None:
    _middlebury_like(tmp_path, 1)
    ds = open_dataset("middlebury2014", tmp_path)
    with pytest.raises(SampleIndexError, match="index 1 is out of range for 1 samples"):
        ds[1]
    assert issubclass(SampleIndexError, IndexError) and issubclass(SampleIndexError, DataError)


def test_dataset_raises_on_non_integer_index(tmp_path: Path) -> None:
    _middlebury_like(tmp_path, 1)
    with pytest.raises(ConfigError, match="must be an integer, got 'a'"):
        open_dataset("middlebury2014", tmp_path)["a"]  # type: ignore[index]


def test_open_dataset_rejects_unknown_name_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown data set 'kitti'"):
        open_dataset("kitti", tmp_path)


def test_open_dataset_rejects_unknown_option_quoting_it(tmp_path: Path) -> None:
    with pytest.raises(
        ConfigError, match=r"unknown option\(s\) \['max_side'\] for data set 'zedd'"
    ):
        open_dataset("zedd", tmp_path, max_side=3)


def test_open_dataset_raises_on_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        open_dataset("tartanair", tmp_path / "nope")


def test_registry_lists_every_family_with_a_kind() -> None:
    expected = {
        "hypersim",
        "arkitscenes",
        "tartanair",
        "ibims1",
        "nyuv2",
        "dfd_indoor",
        "middlebury2014",
        "ddff12",
        "fod500",
        "zedd",
        "focal_stack_folder",
        "mobile_depth",
    }
    assert set(DATASETS) == expected
    assert all(cls.kind in ("rgbd", "stack") for cls in DATASETS.values())
    assert "max_side_px" in dataset_options("focal_stack_folder")


def test_mm_to_m_converts_and_marks_zero_invalid() -> None:
    depth = mm_to_m(np.array([[0, 1500, 65535]], np.uint16))
    assert np.isnan(depth[0, 0])
    assert depth[0, 1] == pytest.approx(1.5)
    assert depth[0, 2] == pytest.approx(65.535)


def test_read_rgb_returns_rgb_order(tmp_path: Path) -> None:
    bgr = np.zeros((3, 5, 3), np.uint8)
    bgr[..., 0] = 200  # blue in OpenCV's order
    cv2.imwrite(str(tmp_path / "a.png"), bgr)
    rgb = read_rgb(tmp_path / "a.png")
    assert rgb[0, 0].tolist() == [0, 0, 200]


def test_read_rgb_raises_on_truncated_jpeg(tmp_path: Path) -> None:
    ok, data = cv2.imencode(
        ".jpg", np.random.default_rng(0).integers(0, 255, (32, 32, 3), np.uint8)
    )
    assert ok
    (tmp_path / "a.jpg").write_bytes(data.tobytes()[: len(data) // 2])
    with pytest.raises(DataError, match="truncated JPEG"):
        read_rgb(tmp_path / "a.jpg")


def test_read_rgb_raises_on_missing_and_empty_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="missing colour image"):
        read_rgb(tmp_path / "nope.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(DataError, match="is empty"):
        read_rgb(tmp_path / "empty.png")
