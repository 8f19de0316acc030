"""Tests of dfdnet_core.visualise: colourised depth, panels, PNG and PLY files."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.errors import ConfigError, DataError
from dfdnet_core.visualise import colourise_depth, colourise_scalar, depth_panel, save_png, write_ply


def _read_ply(path: Path) -> tuple[list[str], bytes]:
    raw = path.read_bytes()
    end = raw.index(b"end_header\n") + len(b"end_header\n")
    return raw[:end].decode("ascii").splitlines(), raw[end:]


def test_colourise_is_monotone_with_near_bright() -> None:
    depth = np.linspace(0.5, 3.0, 60, dtype=np.float32)[None, :]
    for inverse in (True, False):
        grey = colourise_depth(depth, near_m=0.5, far_m=3.0, cmap="gray", inverse=inverse)[0, :, 0].astype(int)
        assert grey[0] == 255 and grey[-1] == 0
        assert np.all(np.diff(grey) <= 0) and np.sum(np.diff(grey) < 0) > 30


def test_colourise_scaling_in_depth_or_inverse_depth() -> None:
    # near 0.5 m, far 2 m: the midpoint in inverse depth is 1.25 /m = 0.8 m, the midpoint in depth 1.25 m.
    depth = np.array([[0.8, 1.25]], np.float32)
    inv = colourise_depth(depth, 0.5, 2.0, cmap="gray", inverse=True)[0, :, 0]
    lin = colourise_depth(depth, 0.5, 2.0, cmap="gray", inverse=False)[0, :, 0]
    assert abs(int(inv[0]) - 128) <= 1  # 0.8 m: midway in 1/d
    assert abs(int(lin[1]) - 128) <= 1  # 1.25 m: midway in d
    assert inv[1] < lin[1]  # in 1/d, 1.25 m is past the middle towards far


def test_colourise_no_depth_is_black_and_out_of_range_is_clipped() -> None:
    depth = np.array([[np.nan, np.inf, 0.0, -1.0, 0.1, 50.0]], np.float32)
    rgb = colourise_depth(depth, near_m=0.5, far_m=2.0)
    assert rgb.dtype == np.uint8 and rgb.shape == (1, 6, 3)
    assert (rgb[0, :4] == 0).all()
    turbo_ends = colourise_depth(np.array([[0.5, 2.0]], np.float32), 0.5, 2.0)
    np.testing.assert_array_equal(rgb[0, 4], turbo_ends[0, 0])
    np.testing.assert_array_equal(rgb[0, 5], turbo_ends[0, 1])
    assert (rgb[0, 4] > 0).any() and (rgb[0, 5] > 0).any()


def test_colourise_default_range_from_data() -> None:
    depth = np.linspace(1.0, 2.0, 101, dtype=np.float32).reshape(1, -1)
    grey = colourise_depth(depth, cmap="gray")[0, :, 0]
    assert grey[0] == 255 and grey[-1] == 0  # 2nd / 98th percentiles saturate the ends
    assert (colourise_depth(np.full((2, 2), np.nan)) == 0).all()


def test_write_ply_round_trip_skips_nan_points(tmp_path: Path) -> None:
    pts = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    pts[0, 1] = np.nan
    pts[1, 2, 2] = np.inf
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3) * 10
    path = tmp_path / "cloud.ply"
    assert write_ply(path, pts, rgb) == 4
    header, body = _read_ply(path)
    assert header[:2] == ["ply", "format binary_little_endian 1.0"]
    assert "element vertex 4" in header
    props = [line.split()[1:] for line in header if line.startswith("property")]
    assert props == [
        ["float", "x"],
        ["float", "y"],
        ["float", "z"],
        ["uchar", "red"],
        ["uchar", "green"],
        ["uchar", "blue"],
    ]
    vertex = np.frombuffer(body, dtype=[("xyz", "<f4", 3), ("rgb", "u1", 3)])
    assert len(body) == 4 * 15
    keep = [(0, 0), (0, 2), (1, 0), (1, 1)]
    np.testing.assert_array_equal(vertex["xyz"], [pts[i, j] for i, j in keep])
    np.testing.assert_array_equal(vertex["rgb"], [rgb[i, j] for i, j in keep])


def test_write_ply_without_colour(tmp_path: Path) -> None:
    path = tmp_path / "xyz.ply"
    assert write_ply(path, np.array([[0.0, 1.0, 2.0], [np.nan, 0, 0]], np.float32)) == 1
    header, body = _read_ply(path)
    assert "element vertex 1" in header and not any("red" in line for line in header)
    assert np.frombuffer(body, "<f4").tolist() == [0.0, 1.0, 2.0]


def test_save_png_round_trip(tmp_path: Path) -> None:
    rgb = np.zeros((5, 7, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgb[2, 3] = (1, 2, 3)
    path = tmp_path / "x.png"
    save_png(path, rgb)
    back = cv2.cvtColor(cv2.imread(str(path), cv2.IMREAD_UNCHANGED), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(back, rgb)


def test_depth_panel_layout() -> None:
    h, w = 20, 30
    aif = np.full((h, w, 3), 77, np.uint8)
    gt = np.full((h, w), 1.0, np.float32)
    pred = gt * 1.1
    pred[0, 0] = np.nan
    conf = np.full((h, w), 0.5, np.float32)
    panel = depth_panel(aif, gt, pred, conf)
    assert panel.shape == (h + 22, 5 * w, 3) and panel.dtype == np.uint8
    np.testing.assert_array_equal(panel[22:, :w], aif)
    assert (panel[22, 2 * w] == 0).all()  # NaN prediction is black in the prediction panel
    assert (panel[22, 3 * w] == 0).all()  # and in the error panel
    np.testing.assert_array_equal(panel[23, 3 * w], colourise_scalar(np.array([[0.1]]), 0.0, 0.25, "magma")[0, 0])
    no_gt = depth_panel(aif, None, pred)
    assert no_gt.shape == (h + 22, 2 * w, 3)


def test_visualise_raises_on_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="depth_m must be an \\(H, W\\) array, got shape \\(2, 2, 1\\)"):
        colourise_depth(np.ones((2, 2, 1)))
    with pytest.raises(ConfigError, match="need 0 < near_m < far_m"):
        colourise_depth(np.ones((2, 2)), near_m=2.0, far_m=1.0)
    with pytest.raises(ConfigError, match="unknown colour map 'nope'"):
        colourise_depth(np.ones((2, 2)), cmap="nope")
    with pytest.raises(ConfigError, match="need finite vmin < vmax"):
        colourise_scalar(np.ones((2, 2)), 1.0, 1.0)
    with pytest.raises(ConfigError, match="rgb must be uint8 with the points' shape"):
        write_ply(tmp_path / "a.ply", np.zeros((4, 3), np.float32), np.zeros((3, 3), np.uint8))
    with pytest.raises(ConfigError, match="points must have shape \\(..., 3\\)"):
        write_ply(tmp_path / "a.ply", np.zeros((4, 2), np.float32))
    with pytest.raises(ConfigError, match="save_png needs"):
        save_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.float32))
    with pytest.raises(DataError, match="cannot write PNG"):
        save_png(tmp_path / "missing" / "a.png", np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(DataError, match="cannot write PLY"):
        write_ply(tmp_path / "missing" / "a.ply", np.zeros((4, 3), np.float32))
    with pytest.raises(ConfigError, match="confidence has shape \\(3, 3\\) but all_in_focus is \\(2, 2\\)"):
        depth_panel(np.zeros((2, 2, 3), np.uint8), None, np.ones((2, 2)), np.ones((3, 3)))
    with pytest.raises(ConfigError, match="all_in_focus must be \\(H, W, 3\\) uint8"):
        depth_panel(np.zeros((2, 2)), None, np.ones((2, 2)))
