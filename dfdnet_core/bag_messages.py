"""rosbag2 message types of dfdnet: topics, the records read and written, the type store, the image codec (no ROS).

Types: our messages (``dfdnet_ros/msg/LensState``, ``dfdnet_ros/msg/FocusStack``) are registered from the ``.msg``
files (the source tree's ``msg/`` or an installed ``share/dfdnet_ros/msg``) on top of the ROS 2 Kilted standard
types of the pure-Python ``rosbags`` library, so the RIHS01 type hashes are the ones rosidl computes.

Records hold plain values in the project's units: stamps in int ns (``header.stamp``), images as numpy arrays in
their ROS encoding (``step`` padding removed, byte order native), intrinsics from P (K when P is zero), as
:mod:`dfdnet_ros.conversions` does for live messages. :mod:`dfdnet_core.bag` reads them, :mod:`dfdnet_core.bag_writer`
writes them.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, DataError
from dfdnet_core.optics import LensOptics
from dfdnet_core.stack_assembler import LensStateSample

LENS_STATE_TYPE = "dfdnet_ros/msg/LensState"
FOCUS_STACK_TYPE = "dfdnet_ros/msg/FocusStack"
IMAGE_TYPE = "sensor_msgs/msg/Image"
COMPRESSED_IMAGE_TYPE = "sensor_msgs/msg/CompressedImage"
CAMERA_INFO_TYPE = "sensor_msgs/msg/CameraInfo"

Kind = Literal["lens_state", "image", "camera_info", "stack", "ground_truth", "depth"]
KINDS: tuple[Kind, ...] = ("lens_state", "image", "camera_info", "stack", "ground_truth", "depth")
"""What a topic carries: lens states, camera frames, camera infos, focal stacks, ground-truth depth, estimated depth."""

ACCEPTED_TYPES: dict[str, tuple[str, ...]] = {
    "lens_state": (LENS_STATE_TYPE,),
    "image": (IMAGE_TYPE, COMPRESSED_IMAGE_TYPE),
    "camera_info": (CAMERA_INFO_TYPE,),
    "stack": (FOCUS_STACK_TYPE,),
    "ground_truth": (IMAGE_TYPE,),
    "depth": (IMAGE_TYPE,),
}
"""Message types accepted for each kind (the first one is what :class:`BagWriter` writes)."""

CAMERA_KINDS: tuple[Kind, ...] = ("lens_state", "image", "camera_info", "ground_truth")
"""What a camera + lens recording holds (the default of :meth:`BagReader.records`)."""
OPTIONAL_KINDS: tuple[Kind, ...] = ("ground_truth",)
"""Kinds whose topic may be missing by default."""


IMAGE_ENCODINGS: dict[str, tuple[str, int]] = {
    "rgb8": ("u1", 3),
    "bgr8": ("u1", 3),
    "rgba8": ("u1", 4),
    "bgra8": ("u1", 4),
    "mono8": ("u1", 1),
    "8UC1": ("u1", 1),
    "8UC3": ("u1", 3),
    "mono16": ("u2", 1),
    "16UC1": ("u2", 1),
    "32FC1": ("f4", 1),
}
"""Image encodings decoded into numpy: encoding -> (dtype, channels)."""

STORAGES = ("mcap", "sqlite3")
BAG_VERSION: Literal[9] = 9
"""rosbag2 metadata version written (ROS 2 Jazzy and newer: type description hashes per topic)."""

OPTICS_KEYS = ("focal_length_m", "f_number", "pixel_pitch_m")
CUSTOM_DATA_PREFIX = "dfdnet."
"""Prefix of the custom_data keys dfdnet writes to metadata.yaml (``dfdnet.focal_length_m``, ...)."""


@dataclass(frozen=True)
class BagTopics:
    """Topic of each kind (absolute names; a missing leading ``/`` is added). Defaults: the dfdnet pipeline's.

    Attributes:
        lens_state: ``dfdnet_ros/msg/LensState`` from focus_sweep_controller.
        image: camera frames, ``sensor_msgs/msg/Image`` (or ``CompressedImage``), stamped at exposure start.
        camera_info: ``sensor_msgs/msg/CameraInfo`` of the frames.
        stack: ``dfdnet_ros/msg/FocusStack`` from stack_buffer.
        ground_truth: ground-truth depth, ``sensor_msgs/msg/Image`` 32FC1 metres (or 16UC1 millimetres).
        depth: estimated depth from dfd_inference, 32FC1 metres.
    """

    lens_state: str = "/dfd/lens_state"
    image: str = "/camera/image_raw"
    camera_info: str = "/camera/camera_info"
    stack: str = "/dfd/stack"
    ground_truth: str = "/camera/ground_truth/depth"
    depth: str = "/dfd/depth"

    def __post_init__(self) -> None:
        for kind in KINDS:
            name = getattr(self, kind)
            if not isinstance(name, str) or not name.strip("/") or any(c.isspace() for c in name):
                raise ConfigError(f"{kind} topic must be a ROS topic name such as '/camera/image_raw', got {name!r}")
            object.__setattr__(self, kind, name if name.startswith("/") else "/" + name)

    def kind_of(self, topic: str) -> Kind | None:
        """The kind recorded on ``topic``, or None."""
        return next((k for k in KINDS if getattr(self, k) == topic), None)


# ----------------------------------------------------------------------------------------------------------- records
@dataclass(frozen=True)
class LensStateRecord:
    """A ``LensState`` message (see msg/LensState.msg).

    Attributes:
        stamp_ns: settle time (``settled``) or command time (not ``settled``), int ns.
        frame_id: optical frame of the camera.
        focus_m: focus distance in metres (``inf`` = infinity).
        power_diopt: optical power in dioptres (1 / focus_m).
        settled: True once the lens has settled at ``focus_m``.
        sweep_id: sweep counter.
        index: position in the sweep (driving order).
        length: focus distances in the sweep.
        temperature_c: lens temperature in degrees Celsius (NaN = unknown).
        driver: lens driver name.
    """

    stamp_ns: int
    frame_id: str
    focus_m: float
    power_diopt: float
    settled: bool
    sweep_id: int
    index: int
    length: int
    temperature_c: float = math.nan
    driver: str = ""

    def to_sample(self) -> LensStateSample:
        """The :class:`LensStateSample` the stack assembler takes."""
        return LensStateSample(self.stamp_ns, self.focus_m, self.power_diopt, self.settled, self.sweep_id,
                               self.index, self.length)


@dataclass(frozen=True, eq=False)
class ImageRecord:
    """A ``sensor_msgs/Image`` (or decoded ``CompressedImage``).

    Attributes:
        stamp_ns: ``header.stamp`` in int ns (exposure start for camera frames).
        frame_id: ``header.frame_id``.
        image: (H, W) or (H, W, C) array of the encoding's dtype (see :data:`IMAGE_ENCODINGS`), native byte order.
        encoding: ROS encoding (a decoded compressed image is ``bgr8`` or ``mono8``).
    """

    stamp_ns: int
    frame_id: str
    image: npt.NDArray[Any]
    encoding: str


@dataclass(frozen=True)
class CameraInfoRecord:
    """A ``sensor_msgs/CameraInfo``.

    Attributes:
        stamp_ns: ``header.stamp`` in int ns.
        frame_id: ``header.frame_id``.
        width_px: image width in pixels.
        height_px: image height in pixels.
        intrinsics: pinhole intrinsics from P (K when P is zero); None when neither holds a focal length
            (an uncalibrated camera).
        distortion_model: e.g. ``"plumb_bob"``.
        distortion: the D coefficients.
    """

    stamp_ns: int
    frame_id: str
    width_px: int
    height_px: int
    intrinsics: CameraIntrinsics | None
    distortion_model: str = "plumb_bob"
    distortion: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.0)


@dataclass(frozen=True, eq=False)
class StackRecord:
    """A ``FocusStack`` message (see msg/FocusStack.msg), images converted to RGB.

    Attributes:
        stamp_ns: exposure start of the newest image, int ns.
        frame_id: optical frame of the camera.
        images: (N, H, W, 3) uint8 RGB in message order (near to far).
        focus_distances_m: (N,) float64 focus distances in metres, same order.
        image_stamps_ns: exposure start of each image, int ns, same order.
        intrinsics: intrinsics from the stack's camera_info, or None when it has none.
        f_number: aperture f-number (0 = unknown).
        focal_length_m: lens focal length in metres (0 = unknown).
        pixel_pitch_m: pixel size on the sensor in metres (0 = unknown).
        sweep_id: sweep of the newest image.
    """

    stamp_ns: int
    frame_id: str
    images: npt.NDArray[np.uint8]
    focus_distances_m: npt.NDArray[np.float64]
    image_stamps_ns: tuple[int, ...]
    intrinsics: CameraIntrinsics | None
    f_number: float = 0.0
    focal_length_m: float = 0.0
    pixel_pitch_m: float = 0.0
    sweep_id: int = 0

    @property
    def optics(self) -> LensOptics | None:
        """The lens optics, or None when any of them is unknown (0)."""
        if self.f_number <= 0 or self.focal_length_m <= 0 or self.pixel_pitch_m <= 0:
            return None
        return LensOptics(self.focal_length_m, self.f_number, self.pixel_pitch_m)


Record = LensStateRecord | ImageRecord | CameraInfoRecord | StackRecord


class BagItem(NamedTuple):
    """One message read from a bag.

    Attributes:
        kind: one of :data:`KINDS`.
        topic: the topic it was recorded on.
        log_time_ns: when the recorder received it (the bag's timestamp), int ns.
        record: the decoded message.
    """

    kind: Kind
    topic: str
    log_time_ns: int
    record: Record


# ----------------------------------------------------------------------------------------------------------- types
def find_msg_dir(msg_dir: str | Path | None = None) -> Path:
    """The folder holding FocusStack.msg and LensState.msg.

    Searched in order: ``msg_dir``; ``msg/`` next to this package in the source tree; ``share/dfdnet_ros/msg``
    under every prefix of ``AMENT_PREFIX_PATH`` and under ``sys.prefix``.

    Raises:
        DataError: none of them holds the message files.
    """
    candidates = [Path(msg_dir)] if msg_dir is not None else []
    candidates.append(Path(__file__).resolve().parents[1] / "msg")
    prefixes = [p for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p] + [sys.prefix]
    candidates += [Path(p) / "share" / "dfdnet_ros" / "msg" for p in prefixes]
    if msg_dir is not None:
        candidates = candidates[:1]
    for folder in candidates:
        if (folder / "LensState.msg").is_file() and (folder / "FocusStack.msg").is_file():
            return folder
    raise DataError(f"cannot find the dfdnet_ros .msg files; looked in {[str(c) for c in candidates]}")


@lru_cache(maxsize=4)
def _base_fielddefs(msg_dir: Path) -> dict[str, Any]:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    ours: dict[str, Any] = {}
    for path in sorted(msg_dir.glob("*.msg")):
        try:
            ours.update(get_types_from_msg(path.read_text(), f"dfdnet_ros/msg/{path.stem}"))
        except Exception as exc:  # rosbags raises its own parser errors
            raise DataError(f"cannot parse message definition {str(path)!r}: {exc}") from exc
    store.register(ours)
    return dict(store.fielddefs)


def dfdnet_typestore(msg_dir: str | Path | None = None, extra: Mapping[str, Any] | None = None) -> Any:
    """A rosbags ``Typestore``: ROS 2 Kilted standard types + our messages (+ ``extra`` parsed definitions).

    ``extra`` (type name -> rosbags field definitions, e.g. from a bag's own schemas) overrides the rest.

    Raises:
        DataError: the .msg files are missing or do not parse, or ``extra`` is inconsistent.
    """
    from rosbags.typesys import Stores, get_typestore

    defs = dict(_base_fielddefs(find_msg_dir(msg_dir)))
    defs.update(extra or {})
    store = get_typestore(Stores.EMPTY)
    try:
        store.register(defs)
    except Exception as exc:
        raise DataError(f"inconsistent message definitions: {exc}") from exc
    return store


def decode_image(
    width: int, height: int, encoding: str, is_bigendian: bool, step: int, data: Any, where: str = "image"
) -> npt.NDArray[Any]:
    """The pixels of a ``sensor_msgs/Image`` as an (H, W) or (H, W, C) array (a copy, native byte order).

    Args:
        width: pixels per row.
        height: rows.
        encoding: one of :data:`IMAGE_ENCODINGS`.
        is_bigendian: byte order of multi-byte pixels.
        step: bytes per row (>= width x channels x bytes per channel; extra bytes are padding).
        data: the bytes (bytes or uint8 array).
        where: what to name in errors (topic and stamp).

    Raises:
        DataError: unknown encoding, empty image, or a data size that does not match width, height and step.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise DataError(f"{where}: image encoding {encoding!r} is not supported; supported: {sorted(IMAGE_ENCODINGS)}")
    kind, channels = IMAGE_ENCODINGS[encoding]
    dtype = np.dtype(kind).newbyteorder(">" if is_bigendian else "<")
    row_bytes = width * channels * dtype.itemsize
    buf = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.view(np.uint8).ravel()
    if width <= 0 or height <= 0:
        raise DataError(f"{where}: empty {encoding} image {width}x{height} px")
    if step < row_bytes or buf.size < step * height:
        raise DataError(f"{where}: {encoding} image {width}x{height} px needs step >= {row_bytes} and "
                        f"{step * height} bytes, got step {step} and {buf.size} bytes")
    rows = buf[: step * height].reshape(height, step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype).reshape(height, width, channels).astype(dtype.newbyteorder("="))
    return pixels[:, :, 0] if channels == 1 else pixels


def encode_image(image: npt.NDArray[Any], encoding: str) -> tuple[int, int, int, npt.NDArray[np.uint8]]:
    """(width, height, step, little-endian bytes as uint8) of ``image`` in ``encoding``, rows unpadded.

    Raises:
        DataError: the array's dtype or shape does not fit ``encoding``.
    """
    if encoding not in IMAGE_ENCODINGS:
        raise DataError(f"image encoding {encoding!r} is not supported; supported: {sorted(IMAGE_ENCODINGS)}")
    kind, channels = IMAGE_ENCODINGS[encoding]
    arr = np.asarray(image)
    got = 1 if arr.ndim == 2 else (arr.shape[2] if arr.ndim == 3 else -1)
    want = np.dtype(kind)
    if (arr.dtype.kind, arr.dtype.itemsize) != (want.kind, want.itemsize) or got != channels or arr.size == 0:
        raise DataError(f"{encoding} needs a non-empty array of {channels} channel(s) of {np.dtype(kind)}, "
                        f"got {arr.dtype} {arr.shape}")
    little = np.ascontiguousarray(arr, dtype=np.dtype(kind).newbyteorder("<"))
    height, width = int(arr.shape[0]), int(arr.shape[1])
    return width, height, width * channels * little.dtype.itemsize, little.view(np.uint8).reshape(-1)


def intrinsics_from_matrices(
    width: int, height: int, k: Sequence[float], p: Sequence[float]
) -> CameraIntrinsics | None:
    """Intrinsics from a CameraInfo's P (K when P holds no focal length); None when neither does."""
    if len(p) == 12 and p[0] > 0 and p[5] > 0:
        fx, fy, cx, cy = p[0], p[5], p[2], p[6]
    elif len(k) == 9 and k[0] > 0 and k[4] > 0:
        fx, fy, cx, cy = k[0], k[4], k[2], k[5]
    else:
        return None
    try:
        return CameraIntrinsics(int(width), int(height), float(fx), float(fy), float(cx), float(cy))
    except ConfigError:
        return None
