"""Message <-> numpy conversions for dfdnet nodes (the ROS-typed edge of dfdnet_core's arrays).

Images follow sensor_msgs/Image (REP 118 for depth: 32FC1 metres, NaN = no depth). Intrinsics come from P, as
depth_image_proc does. Times are int nanoseconds on the numpy side.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from builtin_interfaces.msg import Time
from sensor_msgs.msg import CameraInfo, Image, PointCloud2, PointField
from std_msgs.msg import Header

from dfdnet_core.bag_messages import decode_image, encode_image, intrinsics_from_matrices
from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import DataError, OpticsError, StackError
from dfdnet_core.optics import LensOptics
from dfdnet_core.pointcloud import pointcloud2_fields_and_data
from dfdnet_core.stack import FocalStack
from dfdnet_ros.msg import FocusStack, LensState

def time_to_ns(stamp: Time) -> int:
    """A builtin_interfaces/Time as int nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def ns_to_time(stamp_ns: int) -> Time:
    """Int nanoseconds (>= 0) as builtin_interfaces/Time."""
    sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
    return Time(sec=sec, nanosec=nanosec)


def image_to_numpy(msg: Image) -> npt.NDArray:
    """The pixels of ``msg`` as an (H, W) or (H, W, C) array (a copy), honouring ``step`` and endianness.

    Raises:
        StackError: unsupported encoding, or a data size that does not match width/height/step.
    """
    try:
        return decode_image(msg.width, msg.height, msg.encoding, bool(msg.is_bigendian), msg.step, msg.data)
    except DataError as exc:
        raise StackError(str(exc)) from None


def numpy_to_image(array: npt.NDArray, encoding: str, header: Header) -> Image:
    """An Image message holding ``array`` in ``encoding`` (rgb8, mono8, 32FC1, ...).

    Raises:
        StackError: the array's dtype or channel count does not fit ``encoding``.
    """
    try:
        width, height, step, data = encode_image(array, encoding)
    except DataError as exc:
        raise StackError(str(exc)) from None
    msg = Image(header=header, height=height, width=width, encoding=encoding, is_bigendian=0, step=step)
    msg.data = data.tobytes()
    return msg


def intrinsics_from_camera_info(msg: CameraInfo) -> CameraIntrinsics:
    """Intrinsics from P (rectified), falling back to K when P holds no focal length.

    Raises:
        StackError: neither matrix holds a usable focal length, or the size is zero.
    """
    intr = intrinsics_from_matrices(msg.width, msg.height, list(msg.k), list(msg.p))
    if intr is None:
        raise StackError(f"camera_info {msg.width}x{msg.height} px holds no usable focal length in P or K")
    return intr


def camera_info_from_intrinsics(intr: CameraIntrinsics, header: Header) -> CameraInfo:
    """A CameraInfo (no distortion, identity R) describing ``intr``."""
    msg = CameraInfo()
    msg.header = header
    msg.width, msg.height = intr.width_px, intr.height_px
    msg.distortion_model = "plumb_bob"
    msg.d = [0.0] * 5
    msg.k = [intr.fx_px, 0.0, intr.cx_px, 0.0, intr.fy_px, intr.cy_px, 0.0, 0.0, 1.0]
    msg.r = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]
    msg.p = [intr.fx_px, 0.0, intr.cx_px, 0.0, 0.0, intr.fy_px, intr.cy_px, 0.0, 0.0, 0.0, 1.0, 0.0]
    return msg


def optics_from_stack_msg(msg: FocusStack) -> LensOptics | None:
    """The lens optics carried by a FocusStack, or None when any of them is unknown (0)."""
    if msg.f_number <= 0 or msg.focal_length_m <= 0 or msg.pixel_pitch_m <= 0:
        return None
    return LensOptics(float(msg.focal_length_m), float(msg.f_number), float(msg.pixel_pitch_m))


def focus_stack_to_msg(
    stack: FocalStack, image_stamps_ns: tuple[int, ...] | None = None, encoding: str = "rgb8"
) -> FocusStack:
    """A FocusStack message for ``stack`` (images as rgb8, near to far)."""
    header = Header(stamp=ns_to_time(stack.stamp_ns), frame_id=stack.frame_id)
    msg = FocusStack()
    msg.header = header
    msg.images = [numpy_to_image(img, encoding, header) for img in stack.images]
    msg.focus_distances_m = [float(f) for f in stack.focus_distances_m]
    stamps = image_stamps_ns if image_stamps_ns is not None else (stack.stamp_ns,) * stack.size
    msg.image_stamps = [ns_to_time(s) for s in stamps]
    msg.camera_info = camera_info_from_intrinsics(stack.intrinsics, header)
    msg.f_number = float(stack.optics.f_number)
    msg.focal_length_m = float(stack.optics.focal_length_m)
    msg.pixel_pitch_m = float(stack.optics.pixel_pitch_m)
    msg.sweep_id = int(stack.sweep_id) % 2**32
    return msg


def focal_stack_from_msg(msg: FocusStack, default_optics: LensOptics | None = None) -> FocalStack:
    """The FocalStack a FocusStack message describes (images converted to RGB uint8).

    Raises:
        StackError: fewer than 2 images, counts that do not match, mixed sizes, unknown optics, bad encodings.
    """
    n = len(msg.images)
    if n < 2:
        raise StackError(f"a focal stack needs at least 2 images, got {n}")
    if len(msg.focus_distances_m) != n:
        raise StackError(f"{n} images but {len(msg.focus_distances_m)} focus distances")
    images = []
    for i, img in enumerate(msg.images):
        array = image_to_numpy(img)
        if img.encoding == "bgr8":
            array = array[:, :, ::-1]
        elif img.encoding == "mono8":
            array = np.repeat(array[:, :, None], 3, axis=2)
        elif img.encoding not in ("rgb8",):
            raise StackError(f"stack image {i} has encoding {img.encoding!r}; expected rgb8, bgr8 or mono8")
        if images and array.shape != images[0].shape:
            raise StackError(f"stack image {i} is {array.shape[1]}x{array.shape[0]} px, image 0 is "
                             f"{images[0].shape[1]}x{images[0].shape[0]} px")
        images.append(np.ascontiguousarray(array))
    try:
        optics = optics_from_stack_msg(msg) or default_optics
    except OpticsError as exc:
        raise StackError(f"stack optics are invalid: {exc}") from None
    if optics is None:
        raise StackError("stack carries no optics (f_number, focal_length_m, pixel_pitch_m are 0) and no default")
    if msg.camera_info.width == 0:
        raise StackError("stack carries no camera_info (width 0)")
    try:
        intr = intrinsics_from_camera_info(msg.camera_info)
    except Exception as exc:  # ConfigError from CameraIntrinsics validation
        raise StackError(f"stack camera_info is unusable: {exc}") from None
    fd = np.asarray(msg.focus_distances_m, dtype=np.float64)
    order = np.argsort(fd, kind="stable")
    return FocalStack(
        np.stack(images)[order],
        fd[order],
        intr,
        optics,
        time_to_ns(msg.header.stamp),
        msg.header.frame_id,
        int(msg.sweep_id),
    )


def lens_state_msg(
    stamp_ns: int, frame_id: str, focus_m: float, settled: bool, sweep_id: int, index: int, length: int,
    temperature_c: float | None, driver: str,
) -> LensState:
    """A LensState message (power in dioptres derived from ``focus_m``)."""
    msg = LensState()
    msg.header = Header(stamp=ns_to_time(stamp_ns), frame_id=frame_id)
    msg.focus_distance_m = float(focus_m)
    msg.optical_power_diopt = 0.0 if math.isinf(focus_m) else 1.0 / float(focus_m)
    msg.settled = bool(settled)
    msg.sweep_id = int(sweep_id) % 2**32
    msg.index = int(index)
    msg.sweep_length = int(length)
    msg.temperature_c = math.nan if temperature_c is None else float(temperature_c)
    msg.driver = driver
    return msg


def pointcloud_msg(points: npt.NDArray[np.float32], rgb: npt.NDArray[np.uint8] | None, header: Header) -> PointCloud2:
    """An organised PointCloud2 (height = H, width = W, is_dense False) from (H, W, 3) points in metres."""
    fields, point_step, data = pointcloud2_fields_and_data(points, rgb)
    msg = PointCloud2()
    msg.header = header
    msg.height, msg.width = int(points.shape[0]), int(points.shape[1])
    msg.fields = [
        PointField(name=f.name, offset=f.offset, datatype=f.datatype, count=f.count) for f in fields
    ]
    msg.is_bigendian = False
    msg.point_step = point_step
    msg.row_step = point_step * msg.width
    msg.data = data
    msg.is_dense = False
    return msg
