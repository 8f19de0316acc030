"""FoD500 loader: per-scene *All.tif stacks and an OpenEXR *Dpt.exr depth (metres, R channel)."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from dfdnet_core.data import open_dataset
from dfdnet_core.errors import ConfigError, DataError


def _exr(path: Path, depth: np.ndarray) -> None:
    openexr = pytest.importorskip("OpenEXR")
    header = {"compression": openexr.ZIP_COMPRESSION, "type": openexr.scanlineimage}
    half = depth.astype(np.float16)
    openexr.File(header, {"R": half, "G": half, "B": half}).write(str(path))


def _scene(root: Path, index: int, slices: int = 5, depth: np.ndarray | None = None) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(slices):
        bgr = np.zeros((8, 8, 3), np.uint8)
        bgr[..., 2] = 10 * (i + 1)  # red channel carries the slice number
        cv2.imwrite(str(root / f"{index:06d}_{i:02d}All.tif"), bgr)
    if depth is not None:
        _exr(root / f"{index:06d}Dpt.exr", depth)


def test_fod500_reads_stack_depth_and_documented_focus(tmp_path: Path) -> None:
    depth = np.full((8, 8), 1.25, np.float32)
    depth[0, 0] = 0.0
    _scene(tmp_path, 0, depth=depth)
    sample = open_dataset("fod500", tmp_path)[0]
    assert sample.name == "000000"
    assert sample.images[:, 0, 0, 0].tolist() == [10, 20, 30, 40, 50]
    assert sample.focus_distances_m.tolist() == [0.1, 0.15, 0.3, 0.7, 1.5]
    assert sample.depth_m is not None and sample.depth_m[4, 4] == 1.25  # exact in half float
    assert np.isnan(sample.depth_m[0, 0])
    assert (sample.f_number, sample.focal_length_m) == (1.0, 2.9e-3)


def test_fod500_six_slice_scene_gets_far_slice(tmp_path: Path) -> None:
    _scene(tmp_path, 0, slices=6, depth=np.ones((8, 8), np.float32))
    sample = open_dataset("fod500", tmp_path)[0]
    assert sample.focus_distances_m.tolist() == [0.1, 0.15, 0.3, 0.7, 1.5, 100000.0]


def test_fod500_split_by_scene_index(tmp_path: Path) -> None:
    _scene(tmp_path, 399, depth=np.ones((8, 8), np.float32))
    _scene(tmp_path, 400, depth=np.ones((8, 8), np.float32))
    assert [s.name for s in open_dataset("fod500", tmp_path, split="test")] == ["000400"]
    assert len(open_dataset("fod500", tmp_path, split="train")) == 1


def test_fod500_raises_on_scene_without_depth(tmp_path: Path) -> None:
    _scene(tmp_path, 3)
    with pytest.raises(DataError, match=r"scene 000003 .* has no \*Dpt.exr depth file"):
        open_dataset("fod500", tmp_path)


def test_fod500_raises_on_slice_count_without_focus_list(tmp_path: Path) -> None:
    _scene(tmp_path, 0, slices=3)
    (tmp_path / "000000Dpt.exr").write_bytes(b"")
    with pytest.raises(DataError, match="has 3 images but 6 focus distances"):
        open_dataset("fod500", tmp_path)


def test_fod500_raises_on_truncated_exr(tmp_path: Path) -> None:
    _scene(tmp_path, 0, depth=np.random.default_rng(0).random((8, 8)).astype(np.float32))
    path = tmp_path / "000000Dpt.exr"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="not a readable OpenEXR file"):
        open_dataset("fod500", tmp_path)[0]


def test_fod500_raises_on_depth_of_other_size(tmp_path: Path) -> None:
    _scene(tmp_path, 0, depth=np.ones((8, 9), np.float32))
    with pytest.raises(DataError, match=r"is \(8, 9\), images are \(8, 8\)"):
        open_dataset("fod500", tmp_path)[0]


def test_fod500_rejects_non_positive_focus_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="must be positive metres"):
        open_dataset("fod500", tmp_path, focus_distances_m=[0.1, 0.0])


def test_fod500_names_the_missing_openexr_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _scene(tmp_path, 0)
    (tmp_path / "000000Dpt.exr").write_bytes(b"v/1\x01")
    monkeypatch.setitem(sys.modules, "OpenEXR", None)  # import OpenEXR -> ImportError
    with pytest.raises(DataError, match=r"needs the 'openexr' package \(pip install openexr\)"):
        open_dataset("fod500", tmp_path)[0]
