"""iBims-1 (Koch et al., ECCV-W 2018) RGB-D test images from the ``ibims1_core_mat`` release.

On-disk format (iBims-1 evaluation scripts): one MATLAB v5 ``<name>.mat`` per image holding a struct
``data`` with fields ``rgb`` (480x640x3 uint8 RGB), ``depth`` (480x640 float, metres, 0 = missing),
``mask_invalid`` (1 = valid depth, 0 = invalid), ``mask_transp`` (1 = opaque, 0 = transparent
surface), ``edges``, ``calib`` (3x3 camera matrix) and plane masks. ``imagelist.txt`` (optional)
lists the names.

Valid depth = depth > 0 and mask_invalid == 1 and mask_transp == 1, as the iBims-1 evaluation
combines them. Uncertain: whether ``calib`` uses a 0-based or 1-based (MATLAB) principal point is
not documented; it is used as stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dfdnet_core.data.base import IndexedDataset
from dfdnet_core.data.files import clean_depth, intrinsics_from_matrix, read_text, require_file
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import DataError


def _field(data: dict[str, Any], key: str, path: Path) -> np.ndarray[Any, Any]:
    if key not in data:
        raise DataError(
            f"iBims-1 file {str(path)!r}: struct 'data' has no field {key!r}; it has {sorted(data)}"
        )
    return np.asarray(data[key])


class IBims1Dataset(IndexedDataset[RgbdSample, Path]):
    """iBims-1 images.

    Args:
        root: folder holding the .mat files, or holding ``ibims1_core_mat/`` (and optionally
            ``imagelist.txt``).
        apply_masks: turn invalid and transparent pixels into NaN (the benchmark's valid mask).

    Raises:
        DataError: no .mat files, or a name in ``imagelist.txt`` without its .mat file.
    """

    name = "ibims1"
    kind = "rgbd"

    def __init__(self, root: str | Path, apply_masks: bool = True) -> None:
        super().__init__(root)
        self.apply_masks = apply_masks
        mat_dir = (
            self.root / "ibims1_core_mat" if (self.root / "ibims1_core_mat").is_dir() else self.root
        )
        listing = self.root / "imagelist.txt"
        if listing.is_file():
            for name in read_text(listing, "iBims-1 imagelist.txt").split():
                self._items.append(require_file(mat_dir / f"{name}.mat", "iBims-1 .mat file"))
        else:
            self._items.extend(sorted(mat_dir.glob("*.mat")))
        self._require_items("iBims-1 .mat files")

    def _load(self, item: Path) -> RgbdSample:
        from scipy.io import loadmat
        from scipy.io.matlab import MatReadError

        require_file(item, "iBims-1 .mat file")
        try:
            mat = loadmat(item, simplify_cells=True)
        except (MatReadError, ValueError, OSError, TypeError) as exc:
            raise DataError(
                f"iBims-1 file {str(item)!r} is not a readable MATLAB v5 file (truncated?): {exc}"
            ) from exc
        data = mat.get("data")
        if not isinstance(data, dict):
            raise DataError(
                f"iBims-1 file {str(item)!r} has no struct 'data'; variables: "
                f"{sorted(k for k in mat if not k.startswith('__'))}"
            )
        rgb = _field(data, "rgb", item)
        depth = _field(data, "depth", item)
        if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
            raise DataError(
                f"iBims-1 file {str(item)!r}: rgb is {rgb.dtype} {rgb.shape!r}, expected (H, W, 3) "
                "uint8"
            )
        hw = rgb.shape[:2]
        if depth.shape != hw or not np.issubdtype(depth.dtype, np.number):
            raise DataError(
                f"iBims-1 file {str(item)!r}: depth is {depth.dtype} {depth.shape!r}, expected "
                f"{hw!r}"
            )
        depth_m = clean_depth(depth)
        if self.apply_masks:
            for key in ("mask_invalid", "mask_transp"):
                mask = _field(data, key, item)
                if mask.shape != hw:
                    raise DataError(
                        f"iBims-1 file {str(item)!r}: {key} has shape {mask.shape!r}, expected "
                        f"{hw!r}"
                    )
                depth_m[mask == 0] = np.nan
        intrinsics = None
        if "calib" in data:
            intrinsics = intrinsics_from_matrix(
                _field(data, "calib", item), hw[1], hw[0], f"iBims-1 calib {item}"
            )
        return RgbdSample(np.ascontiguousarray(rgb), depth_m, intrinsics, item.stem)
