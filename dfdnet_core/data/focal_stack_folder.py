"""Real focal stacks stored as folders of images: phone stacks, Mobile Depth, or your own.

A stack is one folder of images (PNG/JPG/TIFF), ordered by natural sort of the file names. ``root``
is either such a folder or a folder of such folders. The focus distance of each image comes from the
first of:

1. ``focus_distances.txt`` next to the images: one distance in **metres** per image in file order,
   or lines ``<file name> <metres>``; '#' starts a comment.
2. ``focus_distances.yaml`` (or ``.yml``): a list of metres in file order, or a mapping with
   ``focus_distances_m`` (list, or mapping file name -> metres) and optionally ``f_number`` and
   ``focal_length_m``.
3. Mobile Depth (Suwajanakorn et al., CVPR 2015, as shipped by DfFintheWild): ``focus_distance.txt``
   (one value per image) and ``focal_length.txt``. Their unit is **not documented** (the calibration
   there is only up to scale, and DfFintheWild uses 1/f - 1/d); pass ``focus_unit_m`` (metres per
   file unit) or ``focal_length_m`` (the real lens focal length, which fixes the unit as
   focal_length_m / focal_length.txt).
4. The last number of each file name, in metres (``image_3_0.90.jpg`` -> 0.90 m), as in
   cake-lab/HybridDepth's phone stacks.

JPEG EXIF ``FNumber`` / ``FocalLength`` of the first image (read with Pillow when installed) fill
``f_number`` and ``focal_length_m`` when no file gives them. Large phone images can be shrunk on
load with ``max_side_px``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from dfdnet_core.data.base import IndexedDataset, check_max_side
from dfdnet_core.data.files import (
    downscale_max_side,
    list_images,
    read_numbers,
    read_rgb,
    read_text,
    stack_same_size,
)
from dfdnet_core.data.sample import StackSample
from dfdnet_core.errors import ConfigError, DataError

_LAST_NUMBER = re.compile(r"(\d+(?:\.\d+)?)$")
_DIGITS = re.compile(r"(\d+)")


def natural_key(path: Path) -> list[Any]:
    """Sort key that orders ``img_2`` before ``img_10``."""
    return [int(t) if t.isdigit() else t.lower() for t in _DIGITS.split(path.name)]


@dataclass(frozen=True)
class _Stack:
    folder: Path
    images: tuple[Path, ...]
    focus_m: tuple[float, ...]
    f_number: float | None
    focal_length_m: float | None
    name: str


class FocalStackFolderDataset(IndexedDataset[StackSample, _Stack]):
    """Focal stacks stored as image folders.

    Args:
        root: a stack folder or a folder of stack folders.
        max_side_px: shrink images so that their longer side is at most this many pixels; None keeps
            them.
        focus_unit_m: metres per unit of a Mobile Depth ``focus_distance.txt``.
        focal_length_m: real focal length in metres (fixes Mobile Depth units; also fills
            ``focal_length_m``).
        f_number: aperture f-number to report when no file or EXIF gives one.

    Raises:
        DataError: no image folder, no focus-distance source, counts that do not match, or
            non-positive distances.
    """

    name = "focal_stack_folder"
    kind = "stack"

    def __init__(
        self,
        root: str | Path,
        max_side_px: int | None = None,
        focus_unit_m: float | None = None,
        focal_length_m: float | None = None,
        f_number: float | None = None,
    ) -> None:
        super().__init__(root)
        check_max_side(self.name, max_side_px)
        for option, value in (
            ("focus_unit_m", focus_unit_m),
            ("focal_length_m", focal_length_m),
            ("f_number", f_number),
        ):
            if value is not None and not value > 0:
                raise ConfigError(f"{self.name}: {option} must be > 0 or None, got {value!r}")
        self.max_side_px = max_side_px
        self.focus_unit_m, self.focal_length_m, self.f_number = (
            focus_unit_m,
            focal_length_m,
            f_number,
        )
        if not self.root.is_dir():
            raise DataError(f"{self.name}: root {str(self.root)!r} is not a folder")
        folders = (
            [self.root]
            if list_images(self.root)
            else sorted(
                (p for p in self.root.iterdir() if p.is_dir() and list_images(p)), key=natural_key
            )
        )
        for folder in folders:
            self._items.append(self._describe(folder))
        self._require_items("image folders")

    def _describe(self, folder: Path) -> _Stack:
        images = tuple(sorted(list_images(folder), key=natural_key))
        f_number, focal_length_m = self.f_number, self.focal_length_m
        if (folder / "focus_distances.txt").is_file():
            focus = _from_txt(folder / "focus_distances.txt", images)
        elif (folder / "focus_distances.yaml").is_file() or (
            folder / "focus_distances.yml"
        ).is_file():
            path = folder / "focus_distances.yaml"
            focus, f_yaml, fl_yaml = _from_yaml(
                path if path.is_file() else folder / "focus_distances.yml", images
            )
            f_number, focal_length_m = f_yaml or f_number, fl_yaml or focal_length_m
        elif (folder / "focus_distance.txt").is_file():
            focus, focal_length_m = self._from_mobile_depth(folder, images)
        else:
            focus = _from_names(images)
        if f_number is None or focal_length_m is None:
            exif_f, exif_fl = _exif_optics(images[0])
            f_number, focal_length_m = f_number or exif_f, focal_length_m or exif_fl
        bad = [d for d in focus if not (np.isfinite(d) and d > 0)]
        if bad:
            raise DataError(
                f"{self.name}: focus distances of {str(folder)!r} must be > 0 m, got {bad!r}"
            )
        rel = folder.relative_to(self.root).as_posix()
        return _Stack(
            folder, images, focus, f_number, focal_length_m, folder.name if rel == "." else rel
        )

    def _from_mobile_depth(
        self, folder: Path, images: tuple[Path, ...]
    ) -> tuple[tuple[float, ...], float | None]:
        values = read_numbers(folder / "focus_distance.txt", "Mobile Depth focus_distance.txt")
        if len(values) < len(images):
            raise DataError(
                f"{self.name}: {str(folder / 'focus_distance.txt')!r} has {len(values)} values for "
                f"{len(images)} images"
            )
        unit_m = self.focus_unit_m
        focal_length_m = self.focal_length_m
        if unit_m is None and self.focal_length_m is not None:
            lens = read_numbers(folder / "focal_length.txt", "Mobile Depth focal_length.txt")
            if len(lens) != 1 or not lens[0] > 0:
                raise DataError(
                    f"{self.name}: {str(folder / 'focal_length.txt')!r} must hold one positive "
                    "number"
                )
            unit_m = self.focal_length_m / lens[0]
        if unit_m is None:
            raise DataError(
                f"{self.name}: the unit of {str(folder / 'focus_distance.txt')!r} (Mobile Depth) "
                "is not documented; pass focus_unit_m (metres per unit) or focal_length_m (real "
                "lens)"
            )
        if focal_length_m is None and (folder / "focal_length.txt").is_file():
            lens = read_numbers(folder / "focal_length.txt", "Mobile Depth focal_length.txt")
            focal_length_m = lens[0] * unit_m if len(lens) == 1 and lens[0] > 0 else None
        return tuple(v * unit_m for v in values[: len(images)]), focal_length_m

    def _load(self, item: _Stack) -> StackSample:
        images = [
            downscale_max_side(read_rgb(p, "focal-stack image"), self.max_side_px)
            for p in item.images
        ]
        return StackSample(
            images=stack_same_size(images, list(item.images), "focal-stack image"),
            focus_distances_m=np.asarray(item.focus_m),
            name=item.name,
            f_number=item.f_number,
            focal_length_m=item.focal_length_m,
        )


def _from_txt(path: Path, images: tuple[Path, ...]) -> tuple[float, ...]:
    lines = [
        ln.split("#", 1)[0].split() for ln in read_text(path, "focus_distances.txt").splitlines()
    ]
    lines = [ln for ln in lines if ln]
    try:
        if lines and all(len(ln) == 2 for ln in lines):
            by_name = {ln[0]: float(ln[1]) for ln in lines}
            missing = [p.name for p in images if p.name not in by_name]
            if missing:
                raise DataError(f"{str(path)!r} gives no focus distance for {missing!r}")
            return tuple(by_name[p.name] for p in images)
        values = [float(t) for ln in lines for t in ln]
    except ValueError as exc:
        raise DataError(f"{str(path)!r} holds a value that is not a number: {exc}") from None
    if len(values) != len(images):
        raise DataError(
            f"{str(path)!r} holds {len(values)} focus distances for {len(images)} images"
        )
    return tuple(values)


def _from_yaml(
    path: Path, images: tuple[Path, ...]
) -> tuple[tuple[float, ...], float | None, float | None]:
    try:
        doc = yaml.safe_load(read_text(path, "focus_distances.yaml"))
    except yaml.YAMLError as exc:
        raise DataError(f"{str(path)!r} is not valid YAML: {exc}") from None
    f_number = focal_length_m = None
    if isinstance(doc, dict):
        f_number, focal_length_m = doc.get("f_number"), doc.get("focal_length_m")
        doc = doc.get("focus_distances_m")
    try:
        if isinstance(doc, dict):
            values = [float(doc[p.name]) for p in images]
        elif isinstance(doc, list):
            values = [float(v) for v in doc]
        else:
            raise DataError(
                f"{str(path)!r} needs a list of metres or a 'focus_distances_m' entry, got {doc!r}"
            )
        optics = tuple(None if v is None else float(v) for v in (f_number, focal_length_m))
    except KeyError as exc:
        raise DataError(f"{str(path)!r} gives no focus distance for {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{str(path)!r} holds a value that is not a number: {exc}") from None
    if len(values) != len(images):
        raise DataError(
            f"{str(path)!r} holds {len(values)} focus distances for {len(images)} images"
        )
    return tuple(values), optics[0], optics[1]


def _from_names(images: tuple[Path, ...]) -> tuple[float, ...]:
    values = []
    for path in images:
        match = _LAST_NUMBER.search(path.stem)
        if match is None:
            raise DataError(
                f"no focus distance for {str(path)!r}: no focus_distances.txt/.yaml next to it and "
                "no number at the end of its name"
            )
        values.append(float(match.group(1)))
    return tuple(values)


def _exif_optics(path: Path) -> tuple[float | None, float | None]:
    """(f-number, focal length in metres) from JPEG EXIF, or Nones; never raises."""
    try:
        from PIL import Image

        with Image.open(path) as img:
            exif = img.getexif().get_ifd(0x8769)
        f_number = float(exif[0x829D]) if 0x829D in exif else None
        focal_mm = float(exif[0x920A]) if 0x920A in exif else None
    except Exception:
        return None, None
    ok = [v if v is not None and np.isfinite(v) and v > 0 else None for v in (f_number, focal_mm)]
    return ok[0], None if ok[1] is None else ok[1] * 1e-3
