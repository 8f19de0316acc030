"""DDFF-12 (Hazirbas et al., "Deep Depth From Focus", ACCV 2018) light-field focal stacks.

On-disk format (the ddff-pytorch H5 reader and its users, e.g. DFV and FOSSA):

- ``ddff-dataset-trainval.h5``: ``stack_train`` / ``stack_val`` (N, 10, 383, 552, 3) uint8 RGB focal
  stacks and ``disp_train`` / ``disp_val`` (N, 383, 552) float disparity ground truth in **pixels**
  (0 = no ground truth);
- ``ddff-dataset-test.h5``: ``stack_test`` only (the test ground truth is withheld).

Documented constants (IntParamLF.mat of the DDFF release, as quoted by DFV and FOSSA): the 10 slices
are focused at disparities spaced linearly from 0.28 px (slice 0, near) to 0.02 px (slice 9, far);
depth = f * b / disparity with the sub-aperture focal length f = 521.4052 px and baseline b = K2 /
flens * 1e-3 m, K2 = 1982.0250823695178, flens = 7317.020641763665, so f * b = 0.14124 m px and the
focus distances run from 0.504 m to 7.06 m. Intrinsics as FOSSA takes them from the DDFF paper (p.
7): fx = fy = 521.4, cx = 285.11, cy = 187.83 px (scaled when the stored images are not 552x383).
Results on DDFF-12 are reported in disparity, so samples carry the disparity and set
``gt_is_disparity``; ``depth_m`` is the converted depth for rendering and display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.data.base import IndexedDataset, check_choice
from dfdnet_core.data.files import hdf5_dataset, open_hdf5, read_hdf5_array
from dfdnet_core.data.sample import StackSample
from dfdnet_core.errors import ConfigError, DataError

DDFF12_SLICES = 10
DDFF12_FOCAL_LENGTH_PX = 521.4052
DDFF12_BASELINE_M = 1982.0250823695178 / 7317.020641763665 * 1e-3
#: depth_m = DDFF12_DEPTH_TIMES_DISPARITY / disparity_px
DDFF12_DEPTH_TIMES_DISPARITY = DDFF12_FOCAL_LENGTH_PX * DDFF12_BASELINE_M
DDFF12_FOCUS_DISPARITIES_PX = tuple(float(d) for d in np.linspace(0.28, 0.02, DDFF12_SLICES))
DDFF12_FOCUS_DISTANCES_M = tuple(
    DDFF12_DEPTH_TIMES_DISPARITY / d for d in DDFF12_FOCUS_DISPARITIES_PX
)
DDFF12_INTRINSICS = CameraIntrinsics(552, 383, 521.4, 521.4, 285.11, 187.83)
_FILES = {
    "train": "ddff-dataset-trainval.h5",
    "val": "ddff-dataset-trainval.h5",
    "test": "ddff-dataset-test.h5",
}


class DDFF12Dataset(IndexedDataset[StackSample, int]):
    """DDFF-12 focal stacks of one split.

    Args:
        root: the .h5 file, or the folder holding ``ddff-dataset-trainval.h5`` /
            ``ddff-dataset-test.h5``.
        split: "train", "val" or "test".
        slice_indices: which of the 10 slices to return (e.g. (0, 2, 4, 6, 9) as FOSSA); None = all.

    Raises:
        DataError: missing file or key, or arrays not in the layout above.
        ConfigError: a slice index outside 0..9.
    """

    name = "ddff12"
    kind = "stack"

    def __init__(
        self, root: str | Path, split: str = "val", slice_indices: Sequence[int] | None = None
    ) -> None:
        super().__init__(root)
        check_choice(self.name, "split", split, tuple(_FILES))
        self.split = split
        self.path = self.root if self.root.is_file() else self.root / _FILES[split]
        indices = tuple(range(DDFF12_SLICES)) if slice_indices is None else tuple(slice_indices)
        if not indices or any(
            isinstance(i, bool) or i not in range(DDFF12_SLICES) for i in indices
        ):
            raise ConfigError(
                f"ddff12: slice_indices must be indices in 0..9, got {slice_indices!r}"
            )
        self.slice_indices = indices
        self.stack_key, self.disp_key = f"stack_{split}", f"disp_{split}"
        with open_hdf5(self.path, "DDFF-12 HDF5 file") as handle:
            stack = hdf5_dataset(handle, self.stack_key, self.path, "DDFF-12 HDF5 file")
            if (
                len(stack.shape) != 5
                or stack.shape[1] != DDFF12_SLICES
                or stack.shape[4] != 3
                or stack.dtype != np.uint8
            ):
                raise DataError(
                    f"DDFF-12 {str(self.path)!r}: {self.stack_key!r} is {stack.dtype} "
                    f"{stack.shape!r}, expected (N, 10, H, W, 3) uint8"
                )
            n, _, h, w, _ = stack.shape
            self.has_ground_truth = self.disp_key in handle
            if split != "test" and not self.has_ground_truth:
                raise DataError(
                    f"DDFF-12 {str(self.path)!r} has no {self.disp_key!r}; it has "
                    f"{sorted(handle.keys())}"
                )
            if self.has_ground_truth:
                disp = hdf5_dataset(handle, self.disp_key, self.path, "DDFF-12 HDF5 file")
                per_stack = tuple(s for s in disp.shape[1:] if s != 1)
                if (
                    len(disp.shape) < 3
                    or disp.shape[0] != n
                    or per_stack != (h, w)
                    or not np.issubdtype(disp.dtype, np.number)
                ):
                    raise DataError(
                        f"DDFF-12 {str(self.path)!r}: {self.disp_key!r} is {disp.dtype} "
                        f"{disp.shape!r}, expected {(n, h, w)!r}"
                    )
        self._hw = (int(h), int(w))
        self._items = list(range(n))
        self._require_items(f"DDFF-12 stacks in {self.stack_key!r}")

    def _load(self, item: int) -> StackSample:
        with open_hdf5(self.path, "DDFF-12 HDF5 file") as handle:
            stack = read_hdf5_array(
                hdf5_dataset(handle, self.stack_key, self.path, "DDFF-12"),
                self.path,
                f"stack {item}",
                item,
            )
            disp = None
            if self.has_ground_truth:
                disp = (
                    read_hdf5_array(
                        hdf5_dataset(handle, self.disp_key, self.path, "DDFF-12"),
                        self.path,
                        f"disparity {item}",
                        item,
                    )
                    .reshape(self._hw)
                    .astype(np.float32)
                )
        depth_m = None
        if disp is not None:
            with np.errstate(invalid="ignore"):
                disp[~(np.isfinite(disp) & (disp > 0))] = np.nan
            depth_m = (np.float32(DDFF12_DEPTH_TIMES_DISPARITY) / disp).astype(np.float32)
        h, w = self._hw
        k = DDFF12_INTRINSICS if (w, h) == (552, 383) else DDFF12_INTRINSICS.scaled(w, h)
        sel = list(self.slice_indices)
        return StackSample(
            images=np.ascontiguousarray(stack[sel]),
            focus_distances_m=np.asarray(DDFF12_FOCUS_DISTANCES_M)[sel],
            name=f"{self.split}/{item:04d}",
            depth_m=depth_m,
            disparity_px=disp,
            gt_is_disparity=disp is not None,
            intrinsics=k,
        )
