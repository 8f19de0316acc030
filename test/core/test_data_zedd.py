"""ZEDD loader: metadata.txt focus runs, focus_stack JPGs, gt/K.txt and gt/depth.npy."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.errors import DataError

FOCUS = {1: 0.61, 2: 0.7, 3: 0.82, 4: 1.0, 5: 1.25, 6: 1.6, 7: 2.2, 8: 3.3, 9: 6.0}
HEX = {k: f"{1000 + 137 * k:04x}" for k in FOCUS}


def _zedd(
    root: Path, image_hw: tuple[int, int] = (12, 16), depth_hw: tuple[int, int] = (12, 16)
) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    lines = ["# run_id\thex_code\tfocus_distance"] + [
        f"run_{k}\t{HEX[k]}\t{FOCUS[k]}" for k in FOCUS
    ]
    (root / "metadata.txt").write_text("\n".join(lines) + "\n")
    scene = root / "val" / "scene_000"
    (scene / "focus_stack").mkdir(parents=True)
    (scene / "gt").mkdir()
    h, w = image_hw
    for k in FOCUS:
        img = np.full((h, w, 3), 20 * k, np.uint8)
        cv2.imwrite(
            str(scene / "focus_stack" / f"img_run_{k}_motor_{HEX[k]}_aperture_F2.8.jpg"), img
        )
    cv2.imwrite(
        str(scene / "focus_stack" / f"img_run_5_motor_{HEX[5]}_aperture_F16.0.jpg"),
        np.full((h, w, 3), 7, np.uint8),
    )
    dh, dw = depth_hw
    np.savetxt(
        scene / "gt" / "K.txt",
        np.array([[20.0, 0, (dw - 1) / 2], [0, 20.0, (dh - 1) / 2], [0, 0, 1]]),
    )
    depth = np.full((dh, dw), 1.75, np.float32)
    depth[0, 0] = 0.0
    depth[0, 1] = 5000.0  # beyond the 1000 m validity bound
    np.save(scene / "gt" / "depth.npy", depth)
    return scene


def test_zedd_stack_uses_runs_1_3_5_7_9_with_metadata_focus(tmp_path: Path) -> None:
    _zedd(tmp_path)
    sample = open_dataset("zedd", tmp_path)[0]
    assert sample.name == "val/scene_000"
    assert sample.focus_distances_m.tolist() == [0.61, 0.82, 1.25, 2.2, 6.0]
    assert (
        np.abs(sample.images[:, 5, 5, 0].astype(int) - [20, 60, 100, 140, 180]).max() <= 2
    )  # JPEG
    assert sample.all_in_focus is not None and abs(int(sample.all_in_focus[5, 5, 0]) - 7) <= 2
    assert sample.depth_m is not None and sample.depth_m[5, 5] == pytest.approx(1.75)
    assert np.isnan(sample.depth_m[0, 0]) and np.isnan(sample.depth_m[0, 1])
    assert sample.f_number == 2.8
    k = sample.intrinsics
    assert k is not None and (k.fx_px, k.cx_px, k.cy_px) == (20.0, 7.5, 5.5)


def test_zedd_resizes_images_to_the_ground_truth_resolution(tmp_path: Path) -> None:
    _zedd(tmp_path, image_hw=(24, 32), depth_hw=(12, 16))
    sample = open_dataset("zedd", tmp_path, runs=[1, 9])[0]
    assert sample.images.shape == (2, 12, 16, 3)
    assert (
        sample.intrinsics is not None and sample.intrinsics.fx_px == 20.0
    )  # K belongs to the depth


def test_zedd_max_side_scales_images_depth_and_intrinsics(tmp_path: Path) -> None:
    _zedd(tmp_path, image_hw=(24, 32), depth_hw=(24, 32))
    sample = open_dataset("zedd", tmp_path, max_side_px=16)[0]
    assert sample.images.shape[1:3] == (12, 16) and sample.depth_m is not None
    assert sample.depth_m.shape == (12, 16)
    assert sample.intrinsics is not None and sample.intrinsics.fx_px == pytest.approx(10.0)


def test_zedd_raises_on_run_missing_from_metadata(tmp_path: Path) -> None:
    _zedd(tmp_path)
    with pytest.raises(DataError, match=r"runs \[11\] are not in"):
        open_dataset("zedd", tmp_path, runs=[1, 11])


def test_zedd_raises_on_missing_stack_image(tmp_path: Path) -> None:
    scene = _zedd(tmp_path)
    (scene / "focus_stack" / f"img_run_3_motor_{HEX[3]}_aperture_F2.8.jpg").unlink()
    with pytest.raises(DataError, match="missing ZEDD focal-stack image"):
        open_dataset("zedd", tmp_path)[0]


def test_zedd_raises_on_aspect_ratio_mismatch(tmp_path: Path) -> None:
    _zedd(tmp_path, image_hw=(12, 16), depth_hw=(12, 12))
    with pytest.raises(DataError, match="not the aspect ratio of the 12x12 px ground truth"):
        open_dataset("zedd", tmp_path)[0]


def test_zedd_raises_on_malformed_metadata(tmp_path: Path) -> None:
    _zedd(tmp_path)
    (tmp_path / "metadata.txt").write_text("run_1 abc\n")
    with pytest.raises(DataError, match="line 1: expected 'run_<k> <hex> <distance>'"):
        open_dataset("zedd", tmp_path)


def test_zedd_raises_on_bad_camera_matrix(tmp_path: Path) -> None:
    scene = _zedd(tmp_path)
    (scene / "gt" / "K.txt").write_text("1 0 0\n0 1 0\n")
    with pytest.raises(DataError, match="holds 6 numbers, expected 9"):
        open_dataset("zedd", tmp_path)[0]
