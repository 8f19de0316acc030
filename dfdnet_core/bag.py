"""rosbag2 recordings without ROS: read camera, lens, ground-truth and stack topics into numpy records.

Uses the pure-Python ``rosbags`` library, so bags recorded on the robot with ``ros2 bag record`` (mcap or sqlite3
storage) can be evaluated on any machine. The definitions a bag carries (mcap schemas, sqlite3
``message_definitions``) take precedence over ours, so old recordings are decoded with the layout they were
written with. Records, topics and the type store live in :mod:`dfdnet_core.bag_messages`, the writer in
:mod:`dfdnet_core.bag_writer`; both are re-exported here, so ``from dfdnet_core.bag import ...`` is the one import.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Collection, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import cv2
import numpy as np
import numpy.typing as npt

from dfdnet_core.bag_messages import (
    ACCEPTED_TYPES,
    CAMERA_KINDS,
    COMPRESSED_IMAGE_TYPE,
    CUSTOM_DATA_PREFIX,
    KINDS,
    OPTICS_KEYS,
    OPTIONAL_KINDS,
    BagItem,
    BagTopics,
    CameraInfoRecord,
    ImageRecord,
    Kind,
    LensStateRecord,
    Record,
    StackRecord,
    decode_image,
    dfdnet_typestore,
    intrinsics_from_matrices,
)
from dfdnet_core.bag_writer import BagWriter, RecorderConfig, default_bag_name, offered_qos
from dfdnet_core.errors import ConfigError, DataError, DfdError

__all__ = [
    "ACCEPTED_TYPES", "CAMERA_KINDS", "KINDS", "OPTIONAL_KINDS", "BagItem", "BagReader", "BagTopics", "BagWriter",
    "CameraInfoRecord", "ImageRecord", "Kind", "LensStateRecord", "RecorderConfig", "StackRecord",
    "default_bag_name", "offered_qos", "read_bag",
]

# On equal stamps, camera infos come before the frames they describe, lens states before frames.
_KIND_ORDER = {"camera_info": 0, "lens_state": 1, "image": 2, "ground_truth": 3, "stack": 4, "depth": 5}


class BagReader:
    """Reads a rosbag2 folder (mcap or sqlite3) into records; use as a context manager.

    Example::

        with BagReader("my_bag") as bag:
            for item in bag.records(("lens_state", "image", "camera_info")):
                ...
    """

    def __init__(self, path: str | Path, topics: BagTopics | None = None, *, msg_dir: str | Path | None = None) -> None:
        """Open the bag and register its message types.

        Raises:
            DataError: the folder is missing or is not a readable rosbag2 recording.
        """
        from rosbags.rosbag2 import Reader

        self.path = Path(path)
        self.topics = topics or BagTopics()
        if not self.path.exists():
            raise DataError(f"rosbag2 recording {str(self.path)!r} does not exist")
        if self.path.is_dir() and not (self.path / "metadata.yaml").is_file():
            raise DataError(f"{str(self.path)!r} is not a rosbag2 folder: it has no metadata.yaml")
        try:
            self._reader = Reader(self.path)
            self._reader.open()
        except Exception as exc:  # rosbags' ReaderError, YAML and storage errors
            raise DataError(f"cannot open rosbag2 recording {str(self.path)!r}: {exc}") from exc
        try:
            self.custom_data = self._read_custom_data()
            self._store = dfdnet_typestore(msg_dir, self._bag_definitions())
        except BaseException:
            self._reader.close()
            raise

    # ------------------------------------------------------------------------------------------------- inspection
    @property
    def topic_types(self) -> dict[str, tuple[str, int]]:
        """Every topic of the bag: name -> (message type, message count)."""
        out: dict[str, tuple[str, int]] = {}
        for conn in self._reader.connections:
            _, count = out.get(conn.topic, (conn.msgtype, 0))
            out[conn.topic] = (conn.msgtype, count + int(conn.msgcount))
        return out

    @property
    def start_time_ns(self) -> int:
        """Log time of the first message, int ns."""
        return int(self._reader.start_time)

    @property
    def duration_ns(self) -> int:
        """Log time span of the messages, int ns."""
        return int(self._reader.duration)

    def has(self, kind: Kind) -> bool:
        """Whether the bag holds messages on the topic of ``kind``."""
        return self.topic_types.get(getattr(self.topics, kind), ("", 0))[1] > 0

    def optics_values(self) -> dict[str, float]:
        """Lens optics stored by ``dfdnet record`` in the bag's custom data (keys of :data:`OPTICS_KEYS`, > 0)."""
        values: dict[str, float] = {}
        for key in OPTICS_KEYS:
            try:
                value = float(self.custom_data.get(CUSTOM_DATA_PREFIX + key, "nan"))
            except ValueError:
                continue
            if math.isfinite(value) and value > 0:
                values[key] = value
        return values

    def check(self, kinds: Collection[Kind], optional: Collection[Kind] = ()) -> None:
        """Check that the topics of ``kinds`` exist (except ``optional`` ones) and carry the expected types.

        Raises:
            DataError: a required topic is missing or empty, or a topic carries another message type.
        """
        have = self.topic_types
        listing = ", ".join(f"{t} ({ty}, {n} msgs)" for t, (ty, n) in sorted(have.items())) or "no topics"
        for kind in kinds:
            topic = getattr(self.topics, kind)
            if topic not in have or have[topic][1] == 0:
                if kind in optional:
                    continue
                raise DataError(f"bag {str(self.path)!r} has no messages on the {kind} topic {topic!r} "
                                f"({' or '.join(ACCEPTED_TYPES[kind])}); it has: {listing}")
            if have[topic][0] not in ACCEPTED_TYPES[kind]:
                raise DataError(f"bag {str(self.path)!r}: topic {topic!r} carries {have[topic][0]!r}, but the "
                                f"{kind} topic must carry {' or '.join(map(repr, ACCEPTED_TYPES[kind]))}")

    # ------------------------------------------------------------------------------------------------- reading
    def records(
        self,
        kinds: Collection[Kind] = CAMERA_KINDS,
        *,
        optional: Collection[Kind] = OPTIONAL_KINDS,
        order: Literal["stamp", "log"] = "stamp",
        reorder_window_s: float = 0.5,
        max_buffered: int = 256,
    ) -> Iterator[BagItem]:
        """The messages of ``kinds``, decoded, in ``header.stamp`` order (or in recording order).

        Args:
            kinds: which kinds to read (see :data:`KINDS`); their topics are ``self.topics``.
            optional: kinds whose topic may be absent.
            order: ``"stamp"``: sorted by header stamp (camera infos before frames of the same stamp) within a
                sliding window; ``"log"``: as recorded (receive order, what the live nodes saw).
            reorder_window_s: a message is released once one stamped more than this later has been read
                (seconds); messages later than that in the bag than their stamp come out of order.
            max_buffered: at most this many messages are held for sorting (memory bound).

        Raises:
            DataError: see :meth:`check`; a message that cannot be decoded (its topic and log time are named).
        """
        if order not in ("stamp", "log"):
            raise ConfigError(f"order must be 'stamp' or 'log', got {order!r}")
        if not (math.isfinite(reorder_window_s) and reorder_window_s >= 0):
            raise ConfigError(f"reorder_window_s must be >= 0 s, got {reorder_window_s!r}")
        unknown = [k for k in kinds if k not in KINDS]
        if unknown:
            raise ConfigError(f"unknown record kind(s) {unknown!r}; known: {list(KINDS)}")
        self.check(kinds, optional)
        wanted = {getattr(self.topics, k): k for k in kinds}
        connections = [c for c in self._reader.connections if c.topic in wanted]
        if not connections:
            return
        stream = (self._decode(wanted[c.topic], c, t, raw) for c, t, raw in self._reader.messages(connections))
        if order == "log":
            yield from stream
            return
        window_ns = round(reorder_window_s * 1e9)
        heap: list[tuple[int, int, int, BagItem]] = []
        newest_ns = -(2**63)
        for seq, item in enumerate(stream):
            stamp = item.record.stamp_ns
            newest_ns = max(newest_ns, stamp)
            heapq.heappush(heap, (stamp, _KIND_ORDER[item.kind], seq, item))
            while heap and (heap[0][0] < newest_ns - window_ns or len(heap) > max_buffered):
                yield heapq.heappop(heap)[3]
        while heap:
            yield heapq.heappop(heap)[3]

    def close(self) -> None:
        """Close the bag's files."""
        if self._reader.is_open:
            self._reader.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------- internals
    def _read_custom_data(self) -> dict[str, str]:
        import yaml

        if not self.path.is_dir():
            return {}
        try:
            meta = yaml.safe_load((self.path / "metadata.yaml").read_text()) or {}
            custom = meta.get("rosbag2_bagfile_information", {}).get("custom_data") or {}
        except (OSError, yaml.YAMLError, AttributeError):
            return {}
        return {str(k): str(v) for k, v in custom.items()} if isinstance(custom, dict) else {}

    def _bag_definitions(self) -> dict[str, Any]:
        """Field definitions carried by the bag for the types on our topics (empty when it carries none)."""
        from rosbags.interfaces import MessageDefinitionFormat
        from rosbags.typesys import get_types_from_idl, get_types_from_msg

        ours = {getattr(self.topics, k) for k in KINDS}
        defs: dict[str, Any] = {}
        for conn in self._reader.connections:
            if conn.topic not in ours or conn.msgdef.format == MessageDefinitionFormat.NONE:
                continue
            try:
                if conn.msgdef.format == MessageDefinitionFormat.MSG:
                    defs.update(get_types_from_msg(conn.msgdef.data, conn.msgtype))
                else:
                    sep = "=" * 80 + "\n"
                    parts = conn.msgdef.data.split(sep)[1:] if conn.msgdef.data.startswith(sep) else [conn.msgdef.data]
                    for part in parts:
                        defs.update(get_types_from_idl(part.split("\n", 1)[1] if part.startswith("IDL: ") else part))
            except Exception:  # a definition rosbags cannot parse: ours are used instead
                continue
        return defs

    def _decode(self, kind: Kind, conn: Any, log_time_ns: int, raw: bytes) -> BagItem:
        where = f"bag {str(self.path)!r} topic {conn.topic!r} at log time {log_time_ns} ns"
        try:
            msg = self._store.deserialize_cdr(raw, conn.msgtype)
            record = _record_from_msg(kind, conn.msgtype, msg, where)
        except DfdError:
            raise
        except Exception as exc:  # rosbags' SerdeError, missing fields of an old layout
            raise DataError(f"{where}: cannot decode {conn.msgtype!r}: {exc}") from exc
        return BagItem(kind, conn.topic, int(log_time_ns), record)


def _time_ns(t: Any) -> int:
    return int(t.sec) * 1_000_000_000 + int(t.nanosec)


def _stamp_ns(header: Any) -> int:
    return _time_ns(header.stamp)


def _record_from_msg(kind: Kind, msgtype: str, msg: Any, where: str) -> Record:
    stamp = _stamp_ns(msg.header)
    frame_id = str(msg.header.frame_id)
    if kind == "lens_state":
        return LensStateRecord(stamp, frame_id, float(msg.focus_distance_m), float(msg.optical_power_diopt),
                               bool(msg.settled), int(msg.sweep_id), int(msg.index), int(msg.sweep_length),
                               float(msg.temperature_c), str(msg.driver))
    if kind == "camera_info":
        return _camera_info_record(msg, stamp, frame_id)
    if kind == "stack":
        return _stack_record(msg, stamp, frame_id, where)
    if msgtype == COMPRESSED_IMAGE_TYPE:
        return _compressed_record(msg, stamp, frame_id, where)
    image = decode_image(int(msg.width), int(msg.height), str(msg.encoding), bool(msg.is_bigendian),
                         int(msg.step), msg.data, where)
    return ImageRecord(stamp, frame_id, image, str(msg.encoding))


def _camera_info_record(msg: Any, stamp: int, frame_id: str) -> CameraInfoRecord:
    k = [float(v) for v in msg.k]
    p = [float(v) for v in msg.p]
    return CameraInfoRecord(stamp, frame_id, int(msg.width), int(msg.height),
                            intrinsics_from_matrices(int(msg.width), int(msg.height), k, p), str(msg.distortion_model),
                            tuple(float(v) for v in msg.d))


def _compressed_record(msg: Any, stamp: int, frame_id: str, where: str) -> ImageRecord:
    data = np.frombuffer(bytes(msg.data), dtype=np.uint8) if not isinstance(msg.data, np.ndarray) else msg.data
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if image is None or image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise DataError(f"{where}: compressed image ({msg.format!r}) cannot be decoded into 8-bit pixels")
    if image.ndim == 3 and image.shape[2] == 4:
        return ImageRecord(stamp, frame_id, np.asarray(image), "bgra8")
    return ImageRecord(stamp, frame_id, np.asarray(image), "bgr8" if image.ndim == 3 else "mono8")


def _stack_record(msg: Any, stamp: int, frame_id: str, where: str) -> StackRecord:
    images: list[npt.NDArray[np.uint8]] = []
    for i, img in enumerate(msg.images):
        pixels = decode_image(int(img.width), int(img.height), str(img.encoding), bool(img.is_bigendian),
                              int(img.step), img.data, f"{where} image {i}")
        if img.encoding == "bgr8":
            pixels = np.ascontiguousarray(pixels[:, :, ::-1])
        elif img.encoding in ("mono8", "8UC1"):
            pixels = np.repeat(pixels[:, :, None], 3, axis=2)
        elif img.encoding not in ("rgb8", "8UC3"):
            raise DataError(f"{where}: stack image {i} has encoding {img.encoding!r}; expected rgb8, bgr8 or mono8")
        if images and pixels.shape != images[0].shape:
            raise DataError(f"{where}: stack image {i} is {pixels.shape[1]}x{pixels.shape[0]} px, image 0 is "
                            f"{images[0].shape[1]}x{images[0].shape[0]} px")
        images.append(pixels)
    if not images:
        raise DataError(f"{where}: the focal stack holds no image")
    info = msg.camera_info
    k, p = [float(v) for v in info.k], [float(v) for v in info.p]
    intr = intrinsics_from_matrices(int(info.width), int(info.height), k, p)
    return StackRecord(stamp, frame_id, np.stack(images), np.asarray(msg.focus_distances_m, dtype=np.float64).copy(),
                       tuple(_time_ns(t) for t in msg.image_stamps), intr, float(msg.f_number),
                       float(msg.focal_length_m), float(msg.pixel_pitch_m), int(msg.sweep_id))


def read_bag(
    path: str | Path,
    kinds: Collection[Kind] = CAMERA_KINDS,
    *,
    topics: BagTopics | None = None,
    optional: Collection[Kind] = OPTIONAL_KINDS,
    order: Literal["stamp", "log"] = "stamp",
) -> Iterator[BagItem]:
    """Shorthand for :meth:`BagReader.records` that opens and closes the bag.

    Raises:
        DataError: see :class:`BagReader` and :meth:`BagReader.records`.
    """
    with BagReader(path, topics) as bag:
        yield from bag.records(kinds, optional=optional, order=order)
