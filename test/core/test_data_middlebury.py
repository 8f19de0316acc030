"""PFM reader/writer and the Middlebury 2014 loader (disparity -> metric depth)."""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data import open_dataset, read_pfm, write_pfm
from dfdnet_core.errors import DataError

F_PX, CX, CY, BASELINE_MM, DOFFS = 999.421, 294.182, 252.932, 193.001, 32.778


def test_read_pfm_big_endian_rows_bottom_to_top(tmp_path: Path) -> None:
    # 3 x 2 grey map, positive scale = big endian; the first stored row is the *bottom* row.
    bottom, top = [1.0, 2.0, 3.0], [4.0, 5.0, float("inf")]
    body = struct.pack(">6f", *bottom, *top)
    (tmp_path / "a.pfm").write_bytes(b"Pf\n3 2\n1.0\n" + body)
    out = read_pfm(tmp_path / "a.pfm")
    assert out.dtype == np.float32
    assert out[0, :2].tolist() == [4.0, 5.0] and np.isinf(out[0, 2])
    assert out[1].tolist() == bottom


def test_read_pfm_little_endian_colour(tmp_path: Path) -> None:
    body = struct.pack("<6f", 0.5, 1.5, 2.5, 3.5, 4.5, 5.5)  # one row, two RGB pixels
    (tmp_path / "c.pfm").write_bytes(b"PF\n2 1\n-1.0\n" + body)
    out = read_pfm(tmp_path / "c.pfm")
    assert out.shape == (1, 2, 3)
    assert out[0, 1].tolist() == [3.5, 4.5, 5.5]


@pytest.mark.parametrize("little_endian", [True, False])
def test_write_then_read_pfm_round_trips(tmp_path: Path, little_endian: bool) -> None:
    data = np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5
    write_pfm(tmp_path / "r.pfm", data, little_endian=little_endian)
    header = (tmp_path / "r.pfm").read_bytes()[:12]
    assert header.startswith(b"Pf\n4 3\n" + (b"-" if little_endian else b"1"))
    assert np.array_equal(read_pfm(tmp_path / "r.pfm"), data)


def test_read_pfm_raises_on_truncated_file(tmp_path: Path) -> None:
    (tmp_path / "t.pfm").write_bytes(b"Pf\n4 3\n-1.0\n" + b"\0" * 20)
    with pytest.raises(DataError, match="is truncated: 20 bytes of samples, expected 48"):
        read_pfm(tmp_path / "t.pfm")


def test_read_pfm_raises_on_bad_header(tmp_path: Path) -> None:
    (tmp_path / "b.pfm").write_bytes(b"P6\n4 3\n255\n")
    with pytest.raises(DataError, match="is not a PFM file"):
        read_pfm(tmp_path / "b.pfm")


def test_write_pfm_raises_on_four_channels(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"got shape \(2, 2, 4\)"):
        write_pfm(tmp_path / "x.pfm", np.zeros((2, 2, 4)))


def _scene(folder: Path, disparity: np.ndarray, calib: str | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    h, w = disparity.shape
    calib = calib or (
        f"cam0=[{F_PX} 0 {CX}; 0 {F_PX} {CY}; 0 0 1]\n"
        f"cam1=[{F_PX} 0 {CX + DOFFS}; 0 {F_PX} {CY}; 0 0 1]\n"
        f"doffs={DOFFS}\nbaseline={BASELINE_MM}\nwidth={w}\nheight={h}\nndisp=70\n"
    )
    (folder / "calib.txt").write_text(calib)
    cv2.imwrite(str(folder / "im0.png"), np.full((h, w, 3), (10, 20, 30), np.uint8))
    write_pfm(folder / "disp0GT.pfm", disparity)
    mask = np.full((h, w), 255, np.uint8)
    mask[0, 0] = 128  # occluded
    cv2.imwrite(str(folder / "mask0nocc.png"), mask)


def test_middlebury_depth_follows_baseline_times_f_over_disparity(tmp_path: Path) -> None:
    disparity = np.full((4, 5), 40.0, np.float32)
    disparity[1, 1] = np.inf  # unknown
    _scene(tmp_path / "Motorcycle", disparity)
    sample = open_dataset("middlebury2014", tmp_path / "Motorcycle")[0]
    expected_m = BASELINE_MM * F_PX / (40.0 + DOFFS) / 1000.0  # mm -> m: 2.653 m
    assert sample.depth_m[0, 0] == pytest.approx(expected_m, rel=1e-6)
    assert 2.6 < expected_m < 2.7
    assert np.isnan(sample.depth_m[1, 1])
    assert sample.rgb[0, 0].tolist() == [30, 20, 10]
    k = sample.intrinsics
    assert k is not None and (k.fx_px, k.cx_px, k.cy_px) == (F_PX, CX, CY)


def test_middlebury_nonocc_mask_drops_occluded_pixels(tmp_path: Path) -> None:
    _scene(tmp_path / "s", np.full((4, 5), 40.0, np.float32))
    sample = open_dataset("middlebury2014", tmp_path, mask="nonocc")[0]
    assert np.isnan(sample.depth_m[0, 0]) and np.isfinite(sample.depth_m[0, 1])


def test_middlebury_raises_on_missing_disparity(tmp_path: Path) -> None:
    _scene(tmp_path / "s", np.full((4, 5), 40.0, np.float32))
    (tmp_path / "s" / "disp0GT.pfm").unlink()
    with pytest.raises(DataError, match="missing Middlebury disparity"):
        open_dataset("middlebury2014", tmp_path / "s")[0]


def test_middlebury_raises_on_disparity_of_other_size(tmp_path: Path) -> None:
    _scene(tmp_path / "s", np.full((4, 5), 40.0, np.float32))
    write_pfm(tmp_path / "s" / "disp0GT.pfm", np.ones((3, 5), np.float32))
    with pytest.raises(DataError, match=r"is \(3, 5\), im0.png is \(4, 5\)"):
        open_dataset("middlebury2014", tmp_path / "s")[0]


def test_middlebury_raises_on_calib_without_baseline(tmp_path: Path) -> None:
    _scene(
        tmp_path / "s",
        np.full((4, 5), 40.0, np.float32),
        calib="cam0=[1 0 1; 0 1 1; 0 0 1]\ndoffs=0\n",
    )
    with pytest.raises(DataError, match="has no number 'baseline'"):
        open_dataset("middlebury2014", tmp_path / "s")[0]


def test_middlebury_raises_when_no_scene_found(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no Middlebury scenes"):
        open_dataset("middlebury2014", tmp_path)
