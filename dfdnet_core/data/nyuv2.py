"""NYU Depth V2 labelled subset (Silberman et al., ECCV 2012): ``nyu_depth_v2_labeled.mat``.

On-disk format: MATLAB v7.3, i.e. HDF5. MATLAB stores arrays column-major, so HDF5 sees them
transposed: ``images`` is (N, 3, W, H) uint8 (MATLAB H x W x 3 x N) and ``depths`` is (N, W, H)
float32 metres (the in-painted depth; ``rawDepths`` has the raw Kinect values with 0 = missing).
Images are 640x480. Splits: ``splits.mat`` (MATLAB v5, ``trainNdxs``/``testNdxs``, 1-based) of the
NYU toolbox; 654 test images.

Camera: the RGB intrinsics of the NYU toolbox ``camera_params.m`` (fx 518.8579, fy 519.4696, cx
325.5824, cy 253.7362 px, Bouguet convention with pixel (0, 0) at the centre of the top-left pixel).
Evaluation crop (Eigen et al. 2014, used by the DfD literature): rows 45..470, columns 41..600
(``[45:471, 41:601]``), which removes the white border left by the registration.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.base import IndexedDataset, check_choice
from dfdnet_core.data.files import (
    clean_depth,
    crop_intrinsics,
    hdf5_dataset,
    open_hdf5,
    read_hdf5_array,
    require_file,
)
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import DataError

NYU_LABELED_FILE = "nyu_depth_v2_labeled.mat"
NYU_INTRINSICS = CameraIntrinsics(
    640,
    480,
    5.1885790117450188e02,
    5.1946961112127485e02,
    3.2558244941119034e02,
    2.5373616633400465e02,
)
#: Eigen crop as (top, bottom, left, right), bottom/right exclusive.
NYU_EVAL_CROP = (45, 471, 41, 601)


class NYUv2Dataset(IndexedDataset[RgbdSample, int]):
    """Images of the labelled NYUv2 subset.

    Args:
        root: ``nyu_depth_v2_labeled.mat`` or the folder holding it (and ``splits.mat`` for a
            split).
        split: "all", "train" or "test" (the latter two read ``splits.mat`` next to the .mat file).
        eval_crop: crop to the Eigen evaluation window (intrinsics shifted to match).
        depth_key: "depths" (in-painted) or "rawDepths" (raw, 0 = missing).

    Raises:
        DataError: missing files, missing keys, or arrays not in the layout above.
    """

    name = "nyuv2"
    kind = "rgbd"

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        eval_crop: bool = False,
        depth_key: str = "depths",
    ) -> None:
        super().__init__(root)
        check_choice(self.name, "split", split, ("all", "train", "test"))
        check_choice(self.name, "depth_key", depth_key, ("depths", "rawDepths"))
        self.path = self.root if self.root.is_file() else self.root / NYU_LABELED_FILE
        self.eval_crop = eval_crop
        self.depth_key = depth_key
        with open_hdf5(self.path, "NYUv2 labelled .mat (v7.3)") as handle:
            images = hdf5_dataset(handle, "images", self.path, "NYUv2 labelled .mat")
            depths = hdf5_dataset(handle, depth_key, self.path, "NYUv2 labelled .mat")
            if len(images.shape) != 4 or images.shape[1] != 3 or images.dtype != np.uint8:
                raise DataError(
                    f"NYUv2 {str(self.path)!r}: 'images' is {images.dtype} {images.shape!r}, "
                    "expected (N, 3, W, H) uint8"
                )
            n, _, w, h = images.shape
            if depths.shape != (n, w, h):
                raise DataError(
                    f"NYUv2 {str(self.path)!r}: {depth_key!r} has shape {depths.shape!r}, expected "
                    f"{(n, w, h)!r} to match 'images'"
                )
        self._size = (int(w), int(h))
        indices = list(range(n))
        if split != "all":
            indices = self._split_indices(split, n)
        self._items = indices
        self._require_items("NYUv2 images")

    def _split_indices(self, split: str, n: int) -> list[int]:
        from scipy.io import loadmat

        path = require_file(self.path.parent / "splits.mat", "NYUv2 splits.mat")
        key = "trainNdxs" if split == "train" else "testNdxs"
        try:
            values = np.asarray(loadmat(path).get(key, np.empty(0)), dtype=np.int64).ravel()
        except (ValueError, OSError, TypeError) as exc:
            raise DataError(f"NYUv2 splits file {str(path)!r} is not readable: {exc}") from exc
        if values.size == 0 or values.min() < 1 or values.max() > n:
            raise DataError(
                f"NYUv2 splits file {str(path)!r}: {key!r} must hold 1-based indices in 1..{n}"
            )
        return [int(v) - 1 for v in values]

    def _load(self, item: int) -> RgbdSample:
        with open_hdf5(self.path, "NYUv2 labelled .mat (v7.3)") as handle:
            image = read_hdf5_array(
                hdf5_dataset(handle, "images", self.path, "NYUv2"), self.path, f"image {item}", item
            )
            depth = read_hdf5_array(
                hdf5_dataset(handle, self.depth_key, self.path, "NYUv2"),
                self.path,
                f"depth {item}",
                item,
            )
        rgb = np.ascontiguousarray(np.transpose(image, (2, 1, 0)))
        depth_m = clean_depth(np.transpose(depth))
        w, h = self._size
        k = NYU_INTRINSICS if (w, h) == (640, 480) else NYU_INTRINSICS.scaled(w, h)
        if self.eval_crop:
            if (w, h) != (640, 480):
                raise DataError(
                    f"NYUv2 {str(self.path)!r}: the evaluation crop needs 640x480 images, got "
                    f"{w}x{h}"
                )
            top, bottom, left, right = NYU_EVAL_CROP
            rgb = np.ascontiguousarray(rgb[top:bottom, left:right])
            depth_m = np.ascontiguousarray(depth_m[top:bottom, left:right])
            k = crop_intrinsics(k, top, left, bottom - top, right - left)
        return RgbdSample(rgb, depth_m, k, f"{item:04d}")
