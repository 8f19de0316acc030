"""DFD-indoor (Carvalho et al., "Deep Depth from Defocus", ECCV-W 2018;
marcelampc/d3net_depth_estimation).

On-disk format (as in the release and in ``/work/shared/data/dfd_indoor``):

- ``dfd_dataset_indoor_N8/rgb/<split>/<time>.JPG``: DSLR images at f/8 (nearly all-in-focus),
  645x432;
- ``dfd_dataset_indoor_N2_8/rgb/<split>/<time>.JPG``: the same scenes at f/2.8 (real defocus); this
  variant has no depth folder of its own and shares the N8 depth files;
- ``dfd_dataset_indoor_N8/depth/<split>/<time>.png``: uint16 depth in **millimetres** from a
  registered Kinect-type sensor, 0 = invalid, same size as the images.

File names are ISO capture times (``2018-04-26T16:38:31.689710``); colour and depth of one scene
were captured a fraction of a second apart, so each image is paired with the depth file nearest in
time. No intrinsics are published for the capture (the simulation settings of the paper are f = 35
mm and a 36 um pixel pitch at this resolution), so ``intrinsics`` is None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from dfdnet_core.data.base import IndexedDataset, check_choice
from dfdnet_core.data.files import list_images, mm_to_m, read_image_raw, read_rgb, require_dir
from dfdnet_core.data.sample import RgbdSample
from dfdnet_core.errors import ConfigError, DataError

_VARIANT = re.compile(r"_N(\d+)(?:_(\d+))?$")


@dataclass(frozen=True)
class _Pair:
    rgb: Path
    depth: Path
    gap_s: float


def capture_time_s(path: Path) -> float:
    """Capture time (POSIX seconds, naive local time) parsed from an ISO-time file name."""
    try:
        return datetime.fromisoformat(path.stem).timestamp()
    except ValueError:
        raise DataError(f"dfd_indoor: file name {path.name!r} is not an ISO capture time") from None


def f_number_of(variant_dir: Path) -> float | None:
    """The f-number encoded in a variant folder name (``..._N8`` -> 8.0, ``..._N2_8`` -> 2.8)."""
    match = _VARIANT.search(variant_dir.name)
    if match is None:
        return None
    return float(f"{match.group(1)}.{match.group(2)}") if match.group(2) else float(match.group(1))


class DfdIndoorDataset(IndexedDataset[RgbdSample, _Pair]):
    """DFD-indoor image/depth pairs of one variant and split.

    Args:
        root: a variant folder (holding ``rgb/``) or the folder holding the ``dfd_dataset_indoor_*``
            variants.
        variant: variant used when ``root`` is the parent folder: "N8" or "N2_8".
        split: sub-folder of ``rgb/`` and ``depth/`` ("train" or "test").
        max_pair_gap_s: largest capture-time difference accepted between an image and its depth,
            seconds.
        on_unpaired: "error" (default) or "skip" for an image without depth within
            ``max_pair_gap_s``.

    Raises:
        DataError: missing folders, names that are not capture times, or an unpaired image
            (on_unpaired="error").
    """

    name = "dfd_indoor"
    kind = "rgbd"

    def __init__(
        self,
        root: str | Path,
        variant: str = "N8",
        split: str = "train",
        max_pair_gap_s: float = 0.5,
        on_unpaired: str = "error",
    ) -> None:
        super().__init__(root)
        check_choice(self.name, "on_unpaired", on_unpaired, ("error", "skip"))
        if not max_pair_gap_s > 0:
            raise ConfigError(f"dfd_indoor: max_pair_gap_s must be > 0 s, got {max_pair_gap_s!r}")
        variant_dir = (
            self.root
            if (self.root / "rgb").is_dir()
            else self.root / f"dfd_dataset_indoor_{variant}"
        )
        self.variant_dir = variant_dir
        self.f_number = f_number_of(variant_dir)
        rgb_dir = require_dir(variant_dir / "rgb" / split, "DFD-indoor rgb")
        depth_dir = variant_dir / "depth" / split
        if not depth_dir.is_dir():
            depth_dir = require_dir(
                variant_dir.parent / "dfd_dataset_indoor_N8" / "depth" / split,
                "DFD-indoor depth (own or the N8 variant's)",
            )
        depths = sorted(p for p in depth_dir.glob("*.png"))
        if not depths:
            raise DataError(f"dfd_indoor: no depth PNG files in {str(depth_dir)!r}")
        depth_times = np.array([capture_time_s(p) for p in depths])
        for rgb in list_images(rgb_dir):
            gaps = np.abs(depth_times - capture_time_s(rgb))
            best = int(np.argmin(gaps))
            if gaps[best] > max_pair_gap_s:
                if on_unpaired == "skip":
                    continue
                raise DataError(
                    f"dfd_indoor: image {str(rgb)!r} has no depth within {max_pair_gap_s} s "
                    f"(nearest {depths[best].name!r}, {gaps[best]:.3f} s away)"
                )
            self._items.append(_Pair(rgb, depths[best], float(gaps[best])))
        self._require_items(f"DFD-indoor images in {str(rgb_dir)!r}")

    def _load(self, item: _Pair) -> RgbdSample:
        rgb = read_rgb(item.rgb, "DFD-indoor image")
        depth_mm = read_image_raw(item.depth, "DFD-indoor depth PNG (uint16 mm)", np.uint16)
        if depth_mm.shape != rgb.shape[:2]:
            raise DataError(
                f"dfd_indoor: depth {str(item.depth)!r} is {depth_mm.shape!r}, image "
                f"{str(item.rgb)!r} is {rgb.shape[:2]!r}"
            )
        return RgbdSample(rgb, mm_to_m(depth_mm), None, item.rgb.stem)
