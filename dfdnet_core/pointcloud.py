"""Back-projection of depth images and the PointCloud2 byte layout, without ROS.

The one back-projection of dfdnet (as depth_image_proc does it, with fx, fy, cx, cy taken from the projection
matrix P of the CameraInfo): for pixel (u, v) with depth z along the optical axis,
``x = (u - cx) * z / fx``, ``y = (v - cy) * z / fy``, in the optical frame (x right, y down, z forward), metres.

PointCloud2 layout (organised: height = H, width = W, row-major, little-endian, ``is_dense = False`` since pixels
without depth become NaN points):

* without colour, ``point_step = 16``: x, y, z float32 at offsets 0, 4, 8, 4 bytes padding (PCL ``PointXYZ``);
* with colour, ``point_step = 32``: x, y, z float32 at 0, 4, 8, padding, ``rgb`` at 16 as PCL and RViz expect:
  one 4-byte field of datatype FLOAT32 whose bytes are (b, g, r, 0) little-endian, i.e. the uint32
  ``r << 16 | g << 8 | b`` reinterpreted as float32; 12 bytes padding (PCL ``PointXYZRGB``).

``row_step = point_step * W``. The node copies ``fields`` into ``sensor_msgs/PointField`` messages and ``data``
into the message's ``data``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError

#: sensor_msgs/PointField datatype constant for float32.
POINTFIELD_FLOAT32 = 7

POINT_STEP_XYZ = 16
POINT_STEP_XYZRGB = 32


@dataclass(frozen=True)
class PointFieldSpec:
    """One sensor_msgs/PointField: name, byte offset in the point, datatype constant and element count."""

    name: str
    offset: int
    datatype: int
    count: int


def _pixel_grid(intrinsics: CameraIntrinsics) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(1, W) normalised x = (u - cx) / fx and (H, 1) normalised y = (v - cy) / fy."""
    u = np.arange(intrinsics.width_px, dtype=np.float64)
    v = np.arange(intrinsics.height_px, dtype=np.float64)
    xn = ((u - intrinsics.cx_px) / intrinsics.fx_px).astype(np.float32)[None, :]
    yn = ((v - intrinsics.cy_px) / intrinsics.fy_px).astype(np.float32)[:, None]
    return xn, yn


def depth_to_points(depth_m: npt.ArrayLike, intrinsics: CameraIntrinsics) -> npt.NDArray[np.float32]:
    """Back-project a depth image into an organised cloud of 3-D points.

    Args:
        depth_m: (H, W) depth along the optical axis in metres; NaN (or inf) = no depth.
        intrinsics: pinhole intrinsics of the depth image (pixels), size H x W.

    Returns:
        (H, W, 3) float32 points (x, y, z) in metres in the camera's optical frame; all three are NaN where the
        depth is not finite.

    Raises:
        ConfigError: the depth is not (H, W) with the size the intrinsics describe.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    expected = (intrinsics.height_px, intrinsics.width_px)
    if depth.shape != expected:
        raise ConfigError(f"depth image has shape {depth.shape!r} but the intrinsics describe (H, W) = {expected!r}")
    z = np.where(np.isfinite(depth), depth, np.float32(np.nan))
    xn, yn = _pixel_grid(intrinsics)
    points = np.empty(expected + (3,), dtype=np.float32)
    np.multiply(z, xn, out=points[..., 0])
    np.multiply(z, yn, out=points[..., 1])
    points[..., 2] = z
    return points


def points_reproject(
    points: npt.ArrayLike, intrinsics: CameraIntrinsics
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Project 3-D points back to pixels: the inverse of :func:`depth_to_points`.

    Args:
        points: (..., 3) points in metres in the optical frame.
        intrinsics: pinhole intrinsics (pixels).

    Returns:
        (u, v, z): pixel column, pixel row and depth in metres, each of shape ``points.shape[:-1]``; NaN where z
        is NaN.

    Raises:
        ConfigError: ``points`` does not end in a dimension of 3.
    """
    pts = np.asarray(points, dtype=np.float64)
    if pts.ndim < 1 or pts.shape[-1] != 3:
        raise ConfigError(f"points must have shape (..., 3), got {pts.shape!r}")
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = intrinsics.fx_px * x / z + intrinsics.cx_px
        v = intrinsics.fy_px * y / z + intrinsics.cy_px
    return u, v, z.copy()


def pack_rgb_float32(rgb_uint8: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Pack (..., 3) uint8 RGB as PCL does: uint32 ``r << 16 | g << 8 | b`` reinterpreted as float32.

    Raises:
        ConfigError: the input is not uint8 with a last dimension of 3.
    """
    rgb = np.asarray(rgb_uint8)
    if rgb.dtype != np.uint8 or rgb.ndim < 1 or rgb.shape[-1] != 3:
        raise ConfigError(f"rgb must be a (..., 3) uint8 array, got dtype {rgb.dtype} and shape {rgb.shape!r}")
    packed = (
        (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2].astype(np.uint32)
    )
    return packed.view(np.float32)


def pointcloud2_fields_and_data(
    points: npt.ArrayLike, rgb_uint8: npt.ArrayLike | None = None
) -> tuple[list[PointFieldSpec], int, bytes]:
    """The fields, point step and data bytes of an organised PointCloud2 (layout in the module docstring).

    Args:
        points: (H, W, 3) float32 points in metres (NaN = no point), e.g. from :func:`depth_to_points`.
        rgb_uint8: optional (H, W, 3) uint8 RGB colour of each point.

    Returns:
        (fields, point_step, data): ``fields`` lists x, y, z (and rgb) as :class:`PointFieldSpec`; ``point_step``
        is 16 without colour and 32 with it; ``data`` holds H * W * point_step bytes, little-endian, row-major.

    Raises:
        ConfigError: ``points`` is not (H, W, 3) or ``rgb_uint8`` is not (H, W, 3) uint8.
    """
    pts = np.asarray(points, dtype=np.float32)
    if pts.ndim != 3 or pts.shape[-1] != 3:
        raise ConfigError(f"points must be an organised (H, W, 3) array, got shape {pts.shape!r}")
    h, w = pts.shape[:2]
    fields = [
        PointFieldSpec("x", 0, POINTFIELD_FLOAT32, 1),
        PointFieldSpec("y", 4, POINTFIELD_FLOAT32, 1),
        PointFieldSpec("z", 8, POINTFIELD_FLOAT32, 1),
    ]
    if rgb_uint8 is None:
        buf = np.zeros((h, w, POINT_STEP_XYZ // 4), dtype="<f4")
        buf[..., :3] = pts
        return fields, POINT_STEP_XYZ, buf.tobytes()
    rgb = np.asarray(rgb_uint8)
    if rgb.shape != (h, w, 3) or rgb.dtype != np.uint8:
        raise ConfigError(
            f"rgb_uint8 must be a ({h}, {w}, 3) uint8 array to match the points, "
            f"got dtype {rgb.dtype} and shape {rgb.shape!r}"
        )
    fields.append(PointFieldSpec("rgb", 16, POINTFIELD_FLOAT32, 1))
    buf = np.zeros((h, w, POINT_STEP_XYZRGB // 4), dtype="<f4")
    buf[..., :3] = pts
    buf[..., 4] = pack_rgb_float32(rgb)
    return fields, POINT_STEP_XYZRGB, buf.tobytes()
