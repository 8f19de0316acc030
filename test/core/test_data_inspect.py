"""The ``python -m dfdnet_core.data.inspect`` smoke script on tiny fixtures."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data.inspect import main
from dfdnet_core.data.pfm import write_pfm


def test_inspect_prints_count_shapes_and_depth_range(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "calib.txt").write_text("cam0=[100 0 2; 0 100 1.5; 0 0 1]\ndoffs=0\nbaseline=50\n")
    cv2.imwrite(str(tmp_path / "im0.png"), np.zeros((4, 5, 3), np.uint8))
    disparity = np.full((4, 5), 10.0, np.float32)
    disparity[0, 0] = 5.0
    disparity[1, 1] = np.inf
    write_pfm(tmp_path / "disp0GT.pfm", disparity)
    assert main(["middlebury2014", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "middlebury2014: 1 samples" in out
    assert "rgb: (4, 5, 3) uint8; depth_m: (4, 5) float32" in out
    # 100 px * 50 mm / 10 px = 0.5 m, and 1.0 m at disparity 5; one pixel unknown.
    assert "depth: 0.5 .. 1 m (median 0.5), valid 95.0%" in out


def test_inspect_passes_yaml_options_and_reports_focus(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for i, focus in enumerate((0.35, 0.9)):
        cv2.imwrite(str(tmp_path / f"image_{i}_{focus:.2f}.png"), np.zeros((40, 60, 3), np.uint8))
    assert main(["focal_stack_folder", str(tmp_path), "-o", "max_side_px=30"]) == 0
    out = capsys.readouterr().out
    assert "images: (2, 20, 30, 3) uint8" in out
    assert "focus distances: 0.35, 0.9 m" in out


def test_inspect_returns_1_and_explains_data_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["tartanair", str(tmp_path)]) == 1
    assert "error: tartanair: no TartanAir frames" in capsys.readouterr().err
