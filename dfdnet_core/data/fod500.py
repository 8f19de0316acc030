"""FoD500 (Maximov et al., "Focus on Defocus", CVPR 2020; dvl-tum/defocus-net) synthetic stacks.

On-disk format (the defocus-net and DFV loaders): one flat folder (``fs_6/``) where file names start
with the 6-digit scene index. Per scene, the focal-stack images are the ``*All.tif`` files (256x256
8-bit RGB TIFF; sorted by name they run through the focus distances in order), the depth is one
``*Dpt.exr`` (OpenEXR, depth in metres in the R channel, half float), and some releases add an
all-in-focus ``*Aif.tif``.

Documented constants (defocus-net README): focus distances 0.1, 0.15, 0.3, 0.7, 1.5 m, focal length
2.9 mm, f-number 1, depth up to 3 m. The ``fs_6`` release has 6 images per scene; DFV gives the 6th
a focus distance of 100000 m (effectively infinity), which is the default here for 6-image scenes.
Split (DFV): scenes 0..399 train, 400..499 test. Uncertain: the exact file-name pattern beyond the
prefix/suffix rule above was not seen.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dfdnet_core.data.base import IndexedDataset, check_choice
from dfdnet_core.data.exr import read_exr_channel
from dfdnet_core.data.files import clean_depth, read_rgb, require_dir, stack_same_size
from dfdnet_core.data.sample import StackSample
from dfdnet_core.errors import ConfigError, DataError

FOD500_FOCUS_DISTANCES_M = (0.1, 0.15, 0.3, 0.7, 1.5)
FOD500_FAR_SLICE_M = 100000.0
FOD500_FOCAL_LENGTH_M = 2.9e-3
FOD500_F_NUMBER = 1.0
FOD500_TRAIN_SCENES = 400
_SCENE = re.compile(r"^(\d{6})")


@dataclass
class _Scene:
    index: int
    slices: list[Path]
    depth: Path | None = None
    aif: Path | None = None


class FoD500Dataset(IndexedDataset[StackSample, _Scene]):
    """FoD500 scenes of one folder.

    Args:
        root: the folder holding the ``*All.tif`` / ``*Dpt.exr`` files (e.g. ``fs_6``).
        split: "all", "train" (scenes < 400) or "test" (scenes >= 400).
        focus_distances_m: focus distance of each slice in metres; None = the documented list (plus
            1e5 m for a
            sixth slice).

    Raises:
        DataError: no scenes, a scene without depth, or a slice count the focus list does not cover.
    """

    name = "fod500"
    kind = "stack"

    def __init__(
        self, root: str | Path, split: str = "all", focus_distances_m: Sequence[float] | None = None
    ) -> None:
        super().__init__(root)
        require_dir(self.root, "FoD500")
        check_choice(self.name, "split", split, ("all", "train", "test"))
        if focus_distances_m is not None and (not focus_distances_m or min(focus_distances_m) <= 0):
            raise ConfigError(
                f"fod500: focus_distances_m must be positive metres, got {focus_distances_m!r}"
            )
        self.focus_distances_m = (
            None if focus_distances_m is None else tuple(float(d) for d in focus_distances_m)
        )
        scenes: dict[int, _Scene] = {}
        for path in sorted(self.root.iterdir()):
            match = _SCENE.match(path.name)
            if match is None or not path.is_file():
                continue
            scene = scenes.setdefault(int(match.group(1)), _Scene(int(match.group(1)), []))
            if path.name.endswith("All.tif"):
                scene.slices.append(path)
            elif path.name.endswith("Dpt.exr"):
                scene.depth = path
            elif path.name.endswith("Aif.tif"):
                scene.aif = path
        for index in sorted(scenes):
            in_train = index < FOD500_TRAIN_SCENES
            if split != "all" and in_train != (split == "train"):
                continue
            scene = scenes[index]
            if scene.depth is None:
                raise DataError(
                    f"fod500: scene {index:06d} in {str(self.root)!r} has no *Dpt.exr depth file"
                )
            if not scene.slices:
                raise DataError(
                    f"fod500: scene {index:06d} in {str(self.root)!r} has no *All.tif images"
                )
            self._focus_for(len(scene.slices), index)
            self._items.append(scene)
        self._require_items("FoD500 scenes (*All.tif + *Dpt.exr)")

    def _focus_for(self, count: int, index: int) -> tuple[float, ...]:
        if self.focus_distances_m is not None:
            focus = self.focus_distances_m
        elif count == len(FOD500_FOCUS_DISTANCES_M):
            focus = FOD500_FOCUS_DISTANCES_M
        else:
            focus = (*FOD500_FOCUS_DISTANCES_M, FOD500_FAR_SLICE_M)
        if len(focus) != count:
            raise DataError(
                f"fod500: scene {index:06d} has {count} images but {len(focus)} focus distances "
                f"{list(focus)}; pass focus_distances_m"
            )
        return focus

    def _load(self, item: _Scene) -> StackSample:
        images = stack_same_size(
            [read_rgb(p, "FoD500 focal-stack TIFF") for p in item.slices],
            item.slices,
            "FoD500 focal-stack TIFF",
        )
        if item.depth is None:
            raise DataError(f"fod500: scene {item.index:06d} has no depth file")
        depth = read_exr_channel(item.depth, "FoD500 depth EXR")
        if depth.shape != images.shape[1:3]:
            raise DataError(
                f"FoD500 depth {str(item.depth)!r} is {depth.shape!r}, images are "
                f"{images.shape[1:3]!r}"
            )
        aif = read_rgb(item.aif, "FoD500 all-in-focus TIFF") if item.aif is not None else None
        return StackSample(
            images=images,
            focus_distances_m=np.asarray(self._focus_for(len(item.slices), item.index)),
            name=f"{item.index:06d}",
            depth_m=clean_depth(depth),
            f_number=FOD500_F_NUMBER,
            focal_length_m=FOD500_FOCAL_LENGTH_M,
            all_in_focus=aif,
        )
