"""Small, strict file readers shared by the loaders. Every failure is a DataError naming the file.

Images are decoded with OpenCV (``cv2.imdecode``), returned RGB. OpenCV decodes a truncated JPEG
silently (it only prints "Premature end of JPEG file"), so JPEG files must end with the end-of-image
marker FF D9.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")


def require_file(path: Path, what: str) -> Path:
    """``path`` if it is a file, else DataError saying which ``what`` is missing."""
    if not path.is_file():
        raise DataError(f"missing {what}: {str(path)!r}")
    return path


def require_dir(path: Path, what: str) -> Path:
    """``path`` if it is a directory, else DataError."""
    if not path.is_dir():
        raise DataError(f"missing {what} folder: {str(path)!r}")
    return path


def _read_bytes(path: Path, what: str) -> bytes:
    require_file(path, what)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read {what} {str(path)!r}: {exc}") from exc
    if not data:
        raise DataError(f"{what} {str(path)!r} is empty")
    return data


def _decode(path: Path, what: str, flags: int) -> npt.NDArray[Any]:
    data = _read_bytes(path, what)
    if data[:2] == b"\xff\xd8" and not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
        raise DataError(f"{what} {str(path)!r} is a truncated JPEG (no end-of-image marker)")
    img = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), flags)
    if img is None:
        raise DataError(f"{what} {str(path)!r} cannot be decoded (truncated, or not an image)")
    return np.asarray(img)


def read_rgb(path: Path, what: str = "colour image") -> npt.NDArray[np.uint8]:
    """An 8-bit colour image as (H, W, 3) uint8 RGB (grey images are expanded, alpha dropped)."""
    img = _decode(path, what, cv2.IMREAD_COLOR)
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise DataError(
            f"{what} {str(path)!r} decoded to {img.dtype} {img.shape!r}, expected (H, W, 3) uint8"
        )
    return np.ascontiguousarray(img[:, :, ::-1])


def read_image_raw(
    path: Path, what: str, dtype: type[np.generic], channels: int = 1
) -> npt.NDArray[Any]:
    """An image exactly as stored (no conversion), checked for dtype and channel count."""
    img = _decode(path, what, cv2.IMREAD_UNCHANGED)
    got_channels = 1 if img.ndim == 2 else int(img.shape[2])
    if img.dtype != dtype or got_channels != channels:
        raise DataError(
            f"{what} {str(path)!r} is {img.dtype} with {got_channels} channel(s), expected "
            f"{np.dtype(dtype).name} with {channels}"
        )
    return img


def read_npy(path: Path, what: str) -> npt.NDArray[Any]:
    """A ``.npy`` array (no pickles)."""
    require_file(path, what)
    try:
        return np.asarray(np.load(path, allow_pickle=False))
    except (ValueError, OSError, EOFError) as exc:
        raise DataError(f"{what} {str(path)!r} is not a readable .npy array: {exc}") from exc


def read_text(path: Path, what: str) -> str:
    """A UTF-8 text file."""
    data = _read_bytes(path, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{what} {str(path)!r} is not UTF-8 text: {exc}") from exc


def read_numbers(path: Path, what: str) -> list[float]:
    """All whitespace-separated numbers of a text file ('#' starts a comment)."""
    values: list[float] = []
    for lineno, line in enumerate(read_text(path, what).splitlines(), start=1):
        for token in line.split("#", 1)[0].split():
            try:
                values.append(float(token))
            except ValueError:
                raise DataError(
                    f"{what} {str(path)!r} line {lineno}: {token!r} is not a number"
                ) from None
    return values


def read_matrix3(path: Path, what: str) -> npt.NDArray[np.float64]:
    """A 3x3 matrix written as 9 numbers (row major) in a text file."""
    values = read_numbers(path, what)
    if len(values) != 9:
        raise DataError(
            f"{what} {str(path)!r} holds {len(values)} numbers, expected 9 (a 3x3 matrix)"
        )
    return np.asarray(values, dtype=np.float64).reshape(3, 3)


def intrinsics_from_matrix(
    k: npt.NDArray[Any], width_px: int, height_px: int, source: str
) -> CameraIntrinsics:
    """CameraIntrinsics from a 3x3 matrix [[fx, s, cx], [0, fy, cy], [0, 0, 1]] (skew ignored)."""
    k = np.asarray(k, dtype=np.float64)
    if k.shape != (3, 3) or not np.all(np.isfinite(k)) or k[0, 0] <= 0 or k[1, 1] <= 0:
        raise DataError(f"{source}: not a pinhole camera matrix: {k.tolist()!r}")
    return CameraIntrinsics(
        width_px, height_px, float(k[0, 0]), float(k[1, 1]), float(k[0, 2]), float(k[1, 2])
    )


@contextmanager
def open_hdf5(path: Path, what: str) -> Iterator[Any]:
    """Open an HDF5 file (also MATLAB v7.3 .mat) read-only; DataError when missing or unreadable."""
    import h5py

    require_file(path, what)
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise DataError(
            f"{what} {str(path)!r} is not a readable HDF5 file (truncated?): {exc}"
        ) from exc
    try:
        yield handle
    finally:
        handle.close()


def hdf5_dataset(handle: Any, key: str, path: Path, what: str) -> Any:
    """The HDF5 dataset ``key`` of an open file; DataError listing the keys that exist."""
    import h5py

    obj = handle.get(key)
    if not isinstance(obj, h5py.Dataset):
        raise DataError(
            f"{what} {str(path)!r} has no dataset {key!r}; it has {sorted(handle.keys())}"
        )
    return obj


def read_hdf5_array(dataset: Any, path: Path, what: str, index: Any = ()) -> npt.NDArray[Any]:
    """Read ``dataset[index]``; DataError when the bytes on disk are cut short."""
    try:
        return np.asarray(dataset[index])
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"cannot read {what} from {str(path)!r} (truncated?): {exc}") from exc


def downscale_max_side(img: npt.NDArray[Any], max_side_px: int | None) -> npt.NDArray[Any]:
    """Shrink (area filter) so that the longer side is at most ``max_side_px``; never enlarges."""
    if max_side_px is None:
        return img
    h, w = img.shape[:2]
    scale = max_side_px / max(h, w)
    if scale >= 1.0:
        return img
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(cv2.resize(img, size, interpolation=cv2.INTER_AREA))


def crop_intrinsics(
    k: CameraIntrinsics, top: int, left: int, height_px: int, width_px: int
) -> CameraIntrinsics:
    """Intrinsics of the window [top:top+height, left:left+width] of an image."""
    return CameraIntrinsics(width_px, height_px, k.fx_px, k.fy_px, k.cx_px - left, k.cy_px - top)


def mm_to_m(depth_mm: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """Integer millimetres (0 = no depth) to float32 metres with NaN where there is no depth."""
    depth_m = depth_mm.astype(np.float32) / np.float32(1000.0)
    depth_m[depth_mm == 0] = np.nan
    return depth_m


def clean_depth(depth: npt.NDArray[Any]) -> npt.NDArray[np.float32]:
    """float32 copy with NaN wherever the value is not finite and > 0."""
    out = np.array(depth, dtype=np.float32)
    with np.errstate(invalid="ignore"):
        out[~(np.isfinite(out) & (out > 0))] = np.nan
    return out


def list_images(folder: Path) -> list[Path]:
    """Image files directly inside ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def stack_same_size(
    images: list[npt.NDArray[np.uint8]], paths: list[Path], what: str
) -> npt.NDArray[np.uint8]:
    """Stack (H, W, 3) images into (N, H, W, 3); DataError naming an image of another size."""
    for img, path in zip(images, paths, strict=True):
        if img.shape != images[0].shape:
            raise DataError(
                f"{what} {str(path)!r} is {img.shape[1]}x{img.shape[0]} px but {str(paths[0])!r} "
                f"is {images[0].shape[1]}x{images[0].shape[0]} px"
            )
    return np.stack(images)
