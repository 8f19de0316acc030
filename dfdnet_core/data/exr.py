"""OpenEXR reading through the ``OpenEXR`` package (PyPI ``openexr`` >= 3.3).

The pip wheel of OpenCV 5 is built without OpenEXR (``cv2.getBuildInformation()`` says "OpenEXR:
NO"), so ``OPENCV_IO_ENABLE_OPENEXR=1`` does not help there; the OpenEXR bindings are used instead
and imported only when an EXR file is actually read.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from dfdnet_core.data.files import require_file
from dfdnet_core.errors import DataError


def read_exr_channel(
    path: Path, what: str, channels: tuple[str, ...] = ("R", "Y", "Z", "V")
) -> npt.NDArray[np.float32]:
    """The first channel of ``channels`` that the file has, as (H, W) float32.

    Raises:
        DataError: the ``OpenEXR`` package is missing, the file is missing or unreadable, or it has
            none of
            the channels.
    """
    require_file(path, what)
    try:
        import OpenEXR
    except ImportError:
        raise DataError(
            f"reading {what} {str(path)!r} needs the 'openexr' package (pip install openexr)"
        ) from None
    try:
        with OpenEXR.File(str(path), separate_channels=True) as exr:
            found: dict[str, Any] = {name: ch.pixels for name, ch in exr.channels().items()}
    except (RuntimeError, OSError, ValueError) as exc:
        raise DataError(
            f"{what} {str(path)!r} is not a readable OpenEXR file (truncated?): {exc}"
        ) from exc
    for name in channels:
        if name in found:
            pixels = np.asarray(found[name])
            if pixels.ndim != 2:
                raise DataError(f"{what} {str(path)!r} channel {name!r} has shape {pixels.shape!r}")
            return pixels.astype(np.float32)
    raise DataError(f"{what} {str(path)!r} has channels {sorted(found)}, none of {list(channels)}")
