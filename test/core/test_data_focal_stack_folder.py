"""Focal-stack folders: phone names, focus_distances.txt/.yaml, Mobile Depth, downscaling."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.errors import ConfigError, DataError


def _images(folder: Path, names: list[str], h: int = 30, w: int = 40) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        cv2.imwrite(str(folder / name), np.full((h, w, 3), 10 * (i + 1), np.uint8))


def test_phone_names_give_focus_in_metres_in_natural_order(tmp_path: Path) -> None:
    names = ["image_2_0.50.png", "image_10_2.21.png", "image_1_0.35.png"]
    _images(tmp_path / "images", names)
    _images(tmp_path / "images3", ["image_1_0.5.png", "image_2_1.3.png"])
    ds = open_dataset("focal_stack_folder", tmp_path)
    assert [s.name for s in ds] == ["images", "images3"]
    sample = ds[0]
    assert sample.focus_distances_m.tolist() == [0.35, 0.5, 2.21]  # image_1, image_2, image_10
    assert sample.images[:, 0, 0, 0].tolist() == [30, 10, 20]
    assert sample.depth_m is None and not sample.has_ground_truth


def test_focus_distances_txt_by_name_overrides_file_names(tmp_path: Path) -> None:
    _images(tmp_path, ["a_1.png", "b_2.png"])
    (tmp_path / "focus_distances.txt").write_text("# name metres\nb_2.png 0.8\na_1.png 0.3\n")
    assert open_dataset("focal_stack_folder", tmp_path)[0].focus_distances_m.tolist() == [0.3, 0.8]


def test_focus_distances_yaml_with_optics(tmp_path: Path) -> None:
    _images(tmp_path, ["0.png", "1.png", "2.png"])
    (tmp_path / "focus_distances.yaml").write_text(
        "focus_distances_m: [0.25, 0.5, 1.0]\nf_number: 2.0\nfocal_length_m: 0.016\n"
    )
    sample = open_dataset("focal_stack_folder", tmp_path)[0]
    assert sample.focus_distances_m.tolist() == [0.25, 0.5, 1.0]
    assert (sample.f_number, sample.focal_length_m) == (2.0, 0.016)


def test_mobile_depth_units_follow_the_given_focal_length(tmp_path: Path) -> None:
    _images(tmp_path, [f"{i:02d}.jpg" for i in range(3)])
    (tmp_path / "focus_distance.txt").write_text("208.130591\r\n27.335806\r\n10.0\r\n")
    (tmp_path / "focal_length.txt").write_text("0.2")
    with pytest.raises(DataError, match="is not documented; pass focus_unit_m"):
        open_dataset("mobile_depth", tmp_path)
    sample = open_dataset("mobile_depth", tmp_path, focal_length_m=0.004)[0]
    # unit = 0.004 m / 0.2 = 0.02 m per file unit
    assert sample.focus_distances_m == pytest.approx([4.16261182, 0.54671612, 0.2])
    assert sample.focal_length_m == 0.004
    by_unit = open_dataset("mobile_depth", tmp_path, focus_unit_m=0.01)[0]
    assert by_unit.focus_distances_m[-1] == pytest.approx(0.1)
    assert by_unit.focal_length_m == pytest.approx(0.002)


def test_max_side_px_downscales_on_load(tmp_path: Path) -> None:
    _images(tmp_path, ["x_0.5.png", "x_1.5.png"], h=300, w=400)
    sample = open_dataset("focal_stack_folder", tmp_path, max_side_px=100)[0]
    assert sample.images.shape == (2, 75, 100, 3)
    assert sample.images[0, 10, 10, 0] == 10


def test_raises_without_focus_source(tmp_path: Path) -> None:
    _images(tmp_path, ["left.png", "right.png"])
    with pytest.raises(DataError, match=r"no focus distance for .*left\.png"):
        open_dataset("focal_stack_folder", tmp_path)


def test_raises_on_focus_count_mismatch(tmp_path: Path) -> None:
    _images(tmp_path, ["a.png", "b.png", "c.png"])
    (tmp_path / "focus_distances.txt").write_text("0.5\n1.0\n")
    with pytest.raises(DataError, match="holds 2 focus distances for 3 images"):
        open_dataset("focal_stack_folder", tmp_path)


def test_raises_on_zero_focus_from_file_name(tmp_path: Path) -> None:
    _images(tmp_path, ["00.png", "01.png"])
    with pytest.raises(DataError, match=r"must be > 0 m, got \[0.0\]"):
        open_dataset("focal_stack_folder", tmp_path)


def test_raises_on_images_of_different_size(tmp_path: Path) -> None:
    _images(tmp_path, ["a_1.png"])
    _images(tmp_path, ["b_2.png"], h=31)
    with pytest.raises(DataError, match=r"is 40x31 px but .* is 40x30 px"):
        open_dataset("focal_stack_folder", tmp_path)[0]


def test_raises_on_truncated_png(tmp_path: Path) -> None:
    _images(tmp_path, ["a_1.png", "b_2.png"])
    (tmp_path / "b_2.png").write_bytes((tmp_path / "b_2.png").read_bytes()[:50])
    with pytest.raises(DataError, match="cannot be decoded"):
        open_dataset("focal_stack_folder", tmp_path)[0]


def test_rejects_tiny_max_side(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="max_side_px must be an integer >= 8"):
        open_dataset("focal_stack_folder", tmp_path, max_side_px=2)
