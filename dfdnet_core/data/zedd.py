"""ZEDD real focal stacks (Zuo et al., "Zero-Shot Depth from Defocus", 2026; zedd.cs.princeton.edu).

On-disk format (FOSSA's ``dataset/zedd.py``):

- ``metadata.txt``: one line per focus run, tab separated ``run_<k>  <motor hex code>  <focus
  distance>``; '#' lines are comments. The unit of the focus distance is not stated; it is read as
  metres (FOSSA feeds it to a metric network as metres).
- ``<split>/<scene>/focus_stack/img_run_<k>_motor_<hex>_aperture_F<f-number with one decimal>.jpg``:
  DSLR images; FOSSA's stack is runs 1, 3, 5, 7, 9 at F2.8, and run 5 at F16.0 is its all-in-focus
  image.
- ``<split>/<scene>/gt/K.txt``: 3x3 camera matrix; ``gt/depth.npy`` (val only): float depth in
  metres. FOSSA treats K as belonging to the depth map's resolution and resizes the images to it;
  the same is done here. Valid depth: finite and within [0.01, 1000] m (FOSSA's defaults).
  Uncertain: for the test split (no depth) K is assumed to describe the full-resolution images.

FOSSA's evaluation protocol then resizes to a height of 480 px and centre-crops to 480x640 (val) or
1216x1824 (test); that crop is left to the evaluation code (``max_side_px`` only scales).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from dfdnet_core.data.base import IndexedDataset, check_choice, check_max_side
from dfdnet_core.data.files import (
    clean_depth,
    intrinsics_from_matrix,
    read_matrix3,
    read_npy,
    read_rgb,
    read_text,
    require_dir,
    require_file,
    stack_same_size,
)
from dfdnet_core.data.sample import StackSample
from dfdnet_core.errors import ConfigError, DataError

ZEDD_RUNS = (1, 3, 5, 7, 9)
ZEDD_F_NUMBER = 2.8
ZEDD_AIF_RUN, ZEDD_AIF_F_NUMBER = 5, 16.0
ZEDD_VALID_DEPTH_M = (0.01, 1000.0)


def read_zedd_metadata(path: Path) -> dict[int, tuple[str, float]]:
    """``{run number: (motor hex code, focus distance)}`` from ``metadata.txt``."""
    runs: dict[int, tuple[str, float]] = {}
    for lineno, line in enumerate(read_text(path, "ZEDD metadata.txt").splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        try:
            if len(parts) != 3 or not parts[0].startswith("run_"):
                raise ValueError
            runs[int(parts[0][4:])] = (parts[1], float(parts[2]))
        except ValueError:
            raise DataError(
                f"ZEDD metadata {str(path)!r} line {lineno}: expected 'run_<k> <hex> <distance>', "
                f"got {line!r}"
            ) from None
    return runs


@dataclass(frozen=True)
class _Scene:
    folder: Path
    name: str


class ZeddDataset(IndexedDataset[StackSample, _Scene]):
    """ZEDD scenes of one split.

    Args:
        root: the ZEDD folder holding ``metadata.txt`` and ``val/`` / ``test/``.
        split: "val" or "test".
        runs: focus runs (1-based run numbers) forming the stack.
        f_number: aperture of the stack images (file-name field).
        max_side_px: optional bound on the longer image side; images, depth and K are scaled
            together.

    Raises:
        DataError: missing files, runs absent from ``metadata.txt``, or images of another aspect
            ratio than depth.
    """

    name = "zedd"
    kind = "stack"

    def __init__(
        self,
        root: str | Path,
        split: str = "val",
        runs: Sequence[int] = ZEDD_RUNS,
        f_number: float = ZEDD_F_NUMBER,
        max_side_px: int | None = None,
    ) -> None:
        super().__init__(root)
        check_choice(self.name, "split", split, ("val", "test"))
        check_max_side(self.name, max_side_px)
        if not runs or not f_number > 0:
            raise ConfigError(
                f"zedd: need at least one run and f_number > 0, got runs={runs!r}, "
                f"f_number={f_number!r}"
            )
        self.split, self.f_number, self.max_side_px = split, float(f_number), max_side_px
        self.metadata = read_zedd_metadata(
            require_file(self.root / "metadata.txt", "ZEDD metadata.txt")
        )
        missing = [r for r in runs if r not in self.metadata]
        if missing:
            raise DataError(
                f"zedd: runs {missing!r} are not in {str(self.root / 'metadata.txt')!r} (it lists "
                f"{sorted(self.metadata)})"
            )
        self.runs = tuple(runs)
        split_dir = require_dir(self.root / split, f"ZEDD {split}")
        self._items = [
            _Scene(p, f"{split}/{p.name}") for p in sorted(split_dir.iterdir()) if p.is_dir()
        ]
        self._require_items(f"ZEDD scenes in {str(split_dir)!r}")

    def _image_path(self, scene: Path, run: int, f_number: float) -> Path:
        return (
            scene
            / "focus_stack"
            / f"img_run_{run}_motor_{self.metadata[run][0]}_aperture_F{f_number:.1f}.jpg"
        )

    def _load(self, item: _Scene) -> StackSample:
        paths = [self._image_path(item.folder, r, self.f_number) for r in self.runs]
        images = stack_same_size(
            [read_rgb(p, "ZEDD focal-stack image") for p in paths], paths, "ZEDD image"
        )
        k = read_matrix3(item.folder / "gt" / "K.txt", "ZEDD gt/K.txt")
        depth_m = None
        h, w = images.shape[1:3]
        if self.split == "val":
            depth_path = item.folder / "gt" / "depth.npy"
            depth = read_npy(depth_path, "ZEDD gt/depth.npy")
            if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.number):
                raise DataError(
                    f"ZEDD depth {str(depth_path)!r} is {depth.dtype} {depth.shape!r}, expected "
                    "(H, W)"
                )
            depth_m = clean_depth(depth)
            lo, hi = ZEDD_VALID_DEPTH_M
            depth_m[(depth_m < lo) | (depth_m > hi)] = np.nan
            h, w = depth_m.shape
        images = _fit(images, (h, w), paths[0])
        aif = None
        if ZEDD_AIF_RUN in self.metadata:
            aif_path = self._image_path(item.folder, ZEDD_AIF_RUN, ZEDD_AIF_F_NUMBER)
            if aif_path.is_file():
                aif = _fit(read_rgb(aif_path, "ZEDD all-in-focus image")[None], (h, w), aif_path)[0]
        intrinsics = intrinsics_from_matrix(k, w, h, f"ZEDD K.txt of {item.name}")
        if self.max_side_px is not None and max(h, w) > self.max_side_px:
            s = self.max_side_px / max(h, w)
            nh, nw = max(1, round(h * s)), max(1, round(w * s))
            images = _fit(images, (nh, nw), paths[0])
            aif = None if aif is None else _fit(aif[None], (nh, nw), paths[0])[0]
            if depth_m is not None:
                depth_m = np.asarray(
                    cv2.resize(depth_m, (nw, nh), interpolation=cv2.INTER_NEAREST), np.float32
                )
            intrinsics = intrinsics.scaled(nw, nh)
        return StackSample(
            images=images,
            focus_distances_m=np.asarray([self.metadata[r][1] for r in self.runs]),
            name=item.name,
            depth_m=depth_m,
            intrinsics=intrinsics,
            f_number=self.f_number,
            all_in_focus=aif,
        )


def _fit(images: np.ndarray, hw: tuple[int, int], source: Path) -> np.ndarray:
    """Resize (N, H, W, 3) images to ``hw`` (area filter); aspect ratios must agree within 1 %."""
    h, w = images.shape[1:3]
    if (h, w) == hw:
        return images
    if abs((w / h) / (hw[1] / hw[0]) - 1.0) > 0.01:
        raise DataError(
            f"ZEDD image {str(source)!r} is {w}x{h} px, which is not the aspect ratio of the "
            f"{hw[1]}x{hw[0]} px ground truth"
        )
    return np.stack(
        [cv2.resize(img, (hw[1], hw[0]), interpolation=cv2.INTER_AREA) for img in images]
    )
