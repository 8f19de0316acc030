"""Portable float map (PFM) reader and writer, as used by Middlebury and many stereo data sets.

Format: an ASCII header of three whitespace-separated fields and then raw float32 samples: ``PF`` (3
channels) or ``Pf`` (1 channel); ``width height``; a scale whose *sign* gives the byte order
(negative = little endian, positive = big endian) and whose magnitude is a unit scale (not applied
here). One whitespace character ends the header. Rows are stored bottom to top, pixels left to
right, channels interleaved. Middlebury writes ``inf`` for unknown disparity.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dfdnet_core.data.files import require_file
from dfdnet_core.errors import DataError

_HEADER = re.compile(rb"(PF|Pf)\s+(\d+)\s+(\d+)\s+([-+]?[0-9.]+(?:[eE][-+]?\d+)?)\s")


def read_pfm(path: Path) -> npt.NDArray[np.float32]:
    """Read a PFM file as float32, top row first: (H, W) for ``Pf``, (H, W, 3) for ``PF``.

    Raises:
        DataError: the file is missing, has no valid PFM header, or holds fewer samples than the
            header says.
    """
    require_file(path, "PFM file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"cannot read PFM file {str(path)!r}: {exc}") from exc
    match = _HEADER.match(data)
    if match is None:
        raise DataError(f"{str(path)!r} is not a PFM file (header {data[:20]!r})")
    channels = 3 if match.group(1) == b"PF" else 1
    width, height = int(match.group(2)), int(match.group(3))
    scale = float(match.group(4))
    if width < 1 or height < 1 or scale == 0.0:
        raise DataError(
            f"PFM file {str(path)!r} has an invalid header: size {width}x{height}, scale {scale!r}"
        )
    count = width * height * channels
    body = data[match.end() :]
    if len(body) < 4 * count:
        raise DataError(
            f"PFM file {str(path)!r} is truncated: {len(body)} bytes of samples, expected "
            f"{4 * count} for {width}x{height}x{channels}"
        )
    dtype = np.dtype("<f4") if scale < 0 else np.dtype(">f4")
    samples = np.frombuffer(body, dtype=dtype, count=count).astype(np.float32)
    shape: tuple[int, ...] = (height, width) if channels == 1 else (height, width, 3)
    return np.ascontiguousarray(samples.reshape(shape)[::-1])


def write_pfm(
    path: Path, image: npt.NDArray[Any], little_endian: bool = True, scale: float = 1.0
) -> None:
    """Write (H, W) or (H, W, 3) samples as a PFM file (top row of ``image`` first in memory).

    Raises:
        DataError: the array has another shape or ``scale`` is not positive.
    """
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim == 2:
        tag = b"Pf"
    elif arr.ndim == 3 and arr.shape[2] == 3:
        tag = b"PF"
    else:
        raise DataError(
            f"PFM holds (H, W) or (H, W, 3) samples, got shape {arr.shape!r} for {str(path)!r}"
        )
    if not scale > 0:
        raise DataError(f"PFM scale magnitude must be > 0, got {scale!r}")
    dtype = np.dtype("<f4") if little_endian else np.dtype(">f4")
    header = b"%s\n%d %d\n%s\n" % (
        tag,
        arr.shape[1],
        arr.shape[0],
        repr(-scale if little_endian else scale).encode(),
    )
    path.write_bytes(header + np.ascontiguousarray(arr[::-1]).astype(dtype).tobytes())
