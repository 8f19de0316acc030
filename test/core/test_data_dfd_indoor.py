"""DFD-indoor loader: JPG images + uint16 millimetre depth PNGs paired by capture time."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.data.dfd_indoor import capture_time_s
from dfdnet_core.errors import DataError

H, W = 12, 16


def _variant(root: Path, name: str, rgb_times: list[str], depth: dict[str, int] | None) -> Path:
    folder = root / f"dfd_dataset_indoor_{name}"
    (folder / "rgb" / "train").mkdir(parents=True)
    for t in rgb_times:
        cv2.imwrite(str(folder / "rgb" / "train" / f"{t}.JPG"), np.full((H, W, 3), 128, np.uint8))
    if depth is not None:
        (folder / "depth" / "train").mkdir(parents=True)
        for t, mm in depth.items():
            d = np.full((H, W), mm, np.uint16)
            d[0, 0] = 0  # invalid
            cv2.imwrite(str(folder / "depth" / "train" / f"{t}.png"), d)
    return folder


def test_dfd_indoor_pairs_by_nearest_capture_time_not_by_sorted_order(tmp_path: Path) -> None:
    # Image B is closest to depth 'b' although sorted order would pair it with 'x' (an extra file).
    rgb_times = ["2018-04-26T16:38:31.689710", "2018-04-26T16:39:15.694566"]
    depth = {
        "2018-04-26T16:38:31.655986": 1500,  # a: 34 ms before image A
        "2018-04-26T16:39:15.100000": 2200,  # x: 595 ms before image B
        "2018-04-26T16:39:15.627710": 3100,  # b: 67 ms before image B
    }
    folder = _variant(tmp_path, "N8", rgb_times, depth)
    ds = open_dataset("dfd_indoor", folder)
    assert [s.name for s in ds] == rgb_times
    assert ds[0].depth_m[5, 5] == pytest.approx(1.5)
    assert ds[1].depth_m[5, 5] == pytest.approx(3.1)
    assert np.isnan(ds[1].depth_m[0, 0]) and ds[1].intrinsics is None


def test_dfd_indoor_n2_8_variant_uses_n8_depth(tmp_path: Path) -> None:
    t = "2018-04-26T17:00:00.000000"
    _variant(tmp_path, "N8", [t], {"2018-04-26T16:59:59.900000": 2000})
    _variant(tmp_path, "N2_8", [t], None)
    ds = open_dataset("dfd_indoor", tmp_path, variant="N2_8")
    assert ds.f_number == 2.8  # type: ignore[attr-defined]
    assert ds[0].depth_m[3, 3] == pytest.approx(2.0)


def test_dfd_indoor_capture_time_has_microseconds() -> None:
    a = capture_time_s(Path("2018-04-26T16:38:31.689710.JPG"))
    b = capture_time_s(Path("2018-04-26T16:38:31.655986.png"))
    assert a - b == pytest.approx(0.033724, abs=1e-6)


def test_dfd_indoor_raises_on_unpaired_image_unless_told_to_skip(tmp_path: Path) -> None:
    rgb_times = ["2018-04-26T17:00:00.000000", "2018-04-26T17:00:10.000000"]
    folder = _variant(tmp_path, "N8", rgb_times, {"2018-04-26T17:00:09.800000": 1})
    with pytest.raises(DataError, match=r"has no depth within 0\.5 s .* 9\.800 s away"):
        open_dataset("dfd_indoor", folder)
    ds = open_dataset("dfd_indoor", folder, on_unpaired="skip")
    assert [s.name for s in ds] == rgb_times[1:]


def test_dfd_indoor_raises_on_missing_depth_folder(tmp_path: Path) -> None:
    folder = _variant(tmp_path, "N4", ["2018-04-26T17:00:00.000000"], None)
    with pytest.raises(DataError, match="missing DFD-indoor depth"):
        open_dataset("dfd_indoor", folder)


def test_dfd_indoor_raises_on_truncated_jpeg(tmp_path: Path) -> None:
    t = "2018-04-26T17:00:00.000000"
    folder = _variant(tmp_path, "N8", [t], {t: 1000})
    path = folder / "rgb" / "train" / f"{t}.JPG"
    cv2.imwrite(str(path), np.random.default_rng(1).integers(0, 255, (H, W, 3), np.uint8))
    path.write_bytes(path.read_bytes()[:-40])
    with pytest.raises(DataError, match="truncated JPEG"):
        open_dataset("dfd_indoor", folder)[0]


def test_dfd_indoor_raises_on_depth_of_other_size(tmp_path: Path) -> None:
    t = "2018-04-26T17:00:00.000000"
    folder = _variant(tmp_path, "N8", [t], {t: 1000})
    cv2.imwrite(str(folder / "depth" / "train" / f"{t}.png"), np.ones((H, W + 1), np.uint16))
    with pytest.raises(DataError, match=r"is \(12, 17\), image .* is \(12, 16\)"):
        open_dataset("dfd_indoor", folder)[0]


def test_dfd_indoor_raises_on_name_that_is_not_a_time(tmp_path: Path) -> None:
    folder = _variant(tmp_path, "N8", ["IMG_0001"], {"2018-04-26T17:00:00.000000": 1})
    with pytest.raises(DataError, match=r"'IMG_0001\.JPG' is not an ISO capture time"):
        open_dataset("dfd_indoor", folder)
