"""ARKitScenes loader: uint16 millimetre depth PNGs, colour frames and .pincam intrinsics."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.errors import DataError


def _video(root: Path, depth_mm: np.ndarray, pincam_stamp: str = "305.245") -> Path:
    video = root / "Validation" / "41069021"
    for folder in ("lowres_wide", "lowres_depth", "lowres_wide_intrinsics"):
        (video / folder).mkdir(parents=True, exist_ok=True)
    h, w = depth_mm.shape
    cv2.imwrite(
        str(video / "lowres_wide" / "41069021_305.244.png"),
        np.full((h, w, 3), (0, 0, 255), np.uint8),
    )
    cv2.imwrite(str(video / "lowres_depth" / "41069021_305.244.png"), depth_mm)
    # The raw release's .pincam stems can be 1 ms off the frame's; width height fx fy cx cy.
    (video / "lowres_wide_intrinsics" / f"41069021_{pincam_stamp}.pincam").write_text(
        f"{w} {h} 211.5 212.25 {w / 2 - 0.5} {h / 2 - 0.5}\n"
    )
    return video


def test_arkitscenes_depth_is_millimetres_with_zero_invalid(tmp_path: Path) -> None:
    depth_mm = np.full((12, 16), 1234, np.uint16)
    depth_mm[0, 0] = 0
    _video(tmp_path, depth_mm)
    ds = open_dataset("arkitscenes", tmp_path)
    sample = ds[0]
    assert len(ds) == 1 and sample.name == "41069021/41069021_305.244"
    assert sample.depth_m[5, 5] == pytest.approx(1.234)
    assert np.isnan(sample.depth_m[0, 0])
    assert sample.rgb[0, 0].tolist() == [255, 0, 0]
    k = sample.intrinsics
    assert k is not None and (k.fx_px, k.fy_px, k.cx_px, k.cy_px) == (211.5, 212.25, 7.5, 5.5)


def test_arkitscenes_ignores_pincam_too_far_in_time(tmp_path: Path) -> None:
    _video(tmp_path, np.full((12, 16), 1000, np.uint16), pincam_stamp="306.244")
    assert open_dataset("arkitscenes", tmp_path)[0].intrinsics is None


def test_arkitscenes_raises_on_depth_without_colour(tmp_path: Path) -> None:
    video = _video(tmp_path, np.full((12, 16), 1000, np.uint16))
    (video / "lowres_wide" / "41069021_305.244.png").unlink()
    with pytest.raises(DataError, match="has no colour frame"):
        open_dataset("arkitscenes", tmp_path)


def test_arkitscenes_raises_on_8_bit_depth(tmp_path: Path) -> None:
    video = _video(tmp_path, np.full((12, 16), 1000, np.uint16))
    cv2.imwrite(
        str(video / "lowres_depth" / "41069021_305.244.png"), np.full((12, 16), 7, np.uint8)
    )
    with pytest.raises(DataError, match="is uint8 with 1 channel\\(s\\), expected uint16"):
        open_dataset("arkitscenes", tmp_path)[0]


def test_arkitscenes_raises_on_truncated_depth_png(tmp_path: Path) -> None:
    video = _video(tmp_path, np.random.default_rng(0).integers(1, 5000, (12, 16), dtype=np.uint16))
    path = video / "lowres_depth" / "41069021_305.244.png"
    path.write_bytes(path.read_bytes()[:60])
    with pytest.raises(DataError, match="cannot be decoded"):
        open_dataset("arkitscenes", tmp_path)[0]


def test_arkitscenes_raises_on_malformed_pincam(tmp_path: Path) -> None:
    video = _video(tmp_path, np.full((12, 16), 1000, np.uint16))
    (video / "lowres_wide_intrinsics" / "41069021_305.245.pincam").write_text("16 12 200\n")
    with pytest.raises(DataError, match="holds 3 numbers, expected 6"):
        open_dataset("arkitscenes", tmp_path)[0]


def test_arkitscenes_raises_when_no_video_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no ARKitScenes depth folders"):
        open_dataset("arkitscenes", tmp_path)
