"""Writing rosbag2 bags without ROS (``rosbags``): typed records or raw CDR from a live subscription.

The bags carry, per topic, the message definition (mcap schema ``ros2msg``), the RIHS01 type description hash and
the offered QoS profiles in metadata.yaml (version 9), which is what ``ros2 bag play`` (Jazzy or newer) reads.
Also the parameters of the recorder node (:class:`RecorderConfig`).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt

from dfdnet_core.bag_messages import (
    ACCEPTED_TYPES,
    BAG_VERSION,
    CAMERA_INFO_TYPE,
    CUSTOM_DATA_PREFIX,
    FOCUS_STACK_TYPE,
    IMAGE_TYPE,
    KINDS,
    LENS_STATE_TYPE,
    OPTICS_KEYS,
    STORAGES,
    BagTopics,
    CameraInfoRecord,
    ImageRecord,
    Kind,
    LensStateRecord,
    Record,
    StackRecord,
    dfdnet_typestore,
    encode_image,
)
from dfdnet_core.errors import ConfigError, DataError


def offered_qos(
    history: int, depth: int, reliability: int, durability: int, deadline_ns: int, lifespan_ns: int,
    liveliness: int, liveliness_lease_ns: int, avoid_ros_namespace_conventions: bool = False,
) -> Any:
    """A rosbags ``Qos`` (what ``metadata.yaml`` lists as offered_qos_profiles) from rmw enum values and ns.

    Raises:
        ConfigError: an enum value rmw does not define.
    """
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    def span(ns: int) -> Any:
        sec, nsec = divmod(max(0, int(ns)), 1_000_000_000)
        return QosTime(sec, nsec)

    try:
        return Qos(QosHistory(int(history)), int(depth), QosReliability(int(reliability)),
                   QosDurability(int(durability)), span(deadline_ns), span(lifespan_ns),
                   QosLiveliness(int(liveliness)), span(liveliness_lease_ns), bool(avoid_ros_namespace_conventions))
    except ValueError as exc:
        raise ConfigError(f"QoS value not defined by rmw: {exc}") from None




_INFINITE_NS = 2**63 - 1  # rmw's "infinite" duration: 9223372036 s 854775807 ns, as rosbag2 writes it


def default_offered_qos() -> Any:
    """The QoS offered by an rclpy publisher with a plain depth: keep last 10, reliable, volatile, automatic."""
    return offered_qos(1, 10, 1, 2, _INFINITE_NS, _INFINITE_NS, 1, _INFINITE_NS)


class BagWriter:
    """Writes a rosbag2 folder (mcap by default) that ``ros2 bag play`` (Jazzy or newer) accepts; thread-safe.

    Typed records go through :meth:`write`; already serialised CDR messages (from a live subscription) through
    :meth:`write_raw`. Connections are created on first use with the message definition and RIHS01 type hash.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        topics: BagTopics | None = None,
        storage: str = "mcap",
        custom_data: Mapping[str, str] | None = None,
        msg_dir: str | Path | None = None,
    ) -> None:
        """Create the bag folder.

        Args:
            path: the rosbag2 folder to create (must not exist).
            topics: topics of the typed records.
            storage: ``"mcap"`` or ``"sqlite3"``.
            custom_data: key/values stored in metadata.yaml (``custom_data``).
            msg_dir: folder of our .msg files (default: see :func:`find_msg_dir`).

        Raises:
            ConfigError: unknown storage.
            DataError: ``path`` exists or cannot be created.
        """
        from rosbags.rosbag2 import StoragePlugin, Writer

        if storage not in STORAGES:
            raise ConfigError(f"storage must be one of {STORAGES}, got {storage!r}")
        self.path = Path(path)
        if self.path.exists():
            raise DataError(f"bag folder {str(self.path)!r} exists already; rosbag2 bags are never overwritten")
        self.topics = topics or BagTopics()
        self._store = dfdnet_typestore(msg_dir)
        self._lock = threading.Lock()
        self._connections: dict[tuple[str, str], Any] = {}
        self.counts: dict[str, int] = {}
        plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=plugin)
        try:
            self._writer.open()
        except Exception as exc:
            raise DataError(f"cannot create bag folder {str(self.path)!r}: {exc}") from exc
        for key, value in (custom_data or {}).items():
            self._writer.set_custom_data(str(key), str(value))
        self._open = True

    def set_optics(self, focal_length_m: float, f_number: float, pixel_pitch_m: float) -> None:
        """Store the lens optics in the bag's custom data (0 = unknown, not stored); read by ``dfdnet eval --bag``."""
        for key, value in zip(OPTICS_KEYS, (focal_length_m, f_number, pixel_pitch_m)):
            if math.isfinite(value) and value > 0:
                self._writer.set_custom_data(CUSTOM_DATA_PREFIX + key, repr(float(value)))

    def write(self, kind: Kind, record: Record, *, log_time_ns: int | None = None, topic: str | None = None) -> None:
        """Serialise and write one record on the topic of ``kind`` (or ``topic``).

        Args:
            kind: one of :data:`KINDS`; ImageRecords may be ``image``, ``ground_truth`` or ``depth``.
            record: the record (its type must fit ``kind``).
            log_time_ns: the bag timestamp (default: the record's stamp), int ns.
            topic: overrides the topic of ``kind``.

        Raises:
            DataError: the record does not fit ``kind`` or cannot be encoded, or the bag is closed.
        """
        expected = {"lens_state": LensStateRecord, "camera_info": CameraInfoRecord, "stack": StackRecord}.get(
            kind, ImageRecord)
        if kind not in KINDS or not isinstance(record, expected):
            raise DataError(f"a {kind!r} record must be a {expected.__name__}, got {type(record).__name__}")
        msgtype = ACCEPTED_TYPES[kind][0]
        msg = self._message(record)
        data = self._store.serialize_cdr(msg, msgtype)
        self.write_raw(topic or getattr(self.topics, kind), msgtype, bytes(data),
                       record.stamp_ns if log_time_ns is None else log_time_ns, (default_offered_qos(),))

    def write_raw(self, topic: str, msgtype: str, cdr: bytes, log_time_ns: int, qos: Sequence[Any] = ()) -> None:
        """Write one CDR-serialised message (with its 4-byte encapsulation header, as rclpy serialises).

        Args:
            topic: absolute topic name.
            msgtype: e.g. ``"sensor_msgs/msg/Image"``; must be known to the type store.
            cdr: the serialised message.
            log_time_ns: the bag timestamp (receive time), int ns.
            qos: offered QoS profiles of the topic (:func:`offered_qos`), used when the topic is first seen.

        Raises:
            DataError: unknown message type, or the bag is closed.
        """
        with self._lock:
            if not self._open:
                raise DataError(f"bag {str(self.path)!r} is closed")
            conn = self._connections.get((topic, msgtype))
            if conn is None:
                try:
                    conn = self._writer.add_connection(topic, msgtype, typestore=self._store,
                                                       offered_qos_profiles=list(qos))
                except Exception as exc:  # unknown type in the store
                    raise DataError(f"cannot add topic {topic!r} of type {msgtype!r} to the bag: {exc}") from exc
                self._connections[(topic, msgtype)] = conn
            self._writer.write(conn, int(log_time_ns), cdr)
            self.counts[topic] = self.counts.get(topic, 0) + 1

    def close(self) -> None:
        """Finish the storage file and write metadata.yaml (idempotent)."""
        with self._lock:
            if self._open:
                self._open = False
                self._writer.close()

    def __enter__(self) -> BagWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------------- messages
    def _header(self, stamp_ns: int, frame_id: str) -> Any:
        if not 0 <= int(stamp_ns) < 2**31 * 1_000_000_000:
            raise DataError(f"stamp {stamp_ns!r} ns does not fit builtin_interfaces/Time")
        sec, nanosec = divmod(int(stamp_ns), 1_000_000_000)
        t = self._store.types
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](sec=sec, nanosec=nanosec),
                                        frame_id=frame_id)

    def _image(self, stamp_ns: int, frame_id: str, image: npt.NDArray[Any], encoding: str) -> Any:
        width, height, step, data = encode_image(image, encoding)
        return self._store.types[IMAGE_TYPE](header=self._header(stamp_ns, frame_id), height=height, width=width,
                                             encoding=encoding, is_bigendian=0, step=step, data=data)

    def _camera_info(self, rec: CameraInfoRecord, header: Any) -> Any:
        k = rec.intrinsics
        fx, fy, cx, cy = (k.fx_px, k.fy_px, k.cx_px, k.cy_px) if k is not None else (0.0, 0.0, 0.0, 0.0)
        roi = self._store.types["sensor_msgs/msg/RegionOfInterest"](x_offset=0, y_offset=0, height=0, width=0,
                                                                    do_rectify=False)
        return self._store.types[CAMERA_INFO_TYPE](
            header=header, height=rec.height_px, width=rec.width_px, distortion_model=rec.distortion_model,
            d=np.asarray(rec.distortion, dtype=np.float64),
            k=np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0 if k is not None else 0.0]),
            r=np.array([1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0]),
            p=np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0 if k is not None else 0.0, 0.0]),
            binning_x=0, binning_y=0, roi=roi)

    def _message(self, rec: Record) -> Any:
        t = self._store.types
        if isinstance(rec, LensStateRecord):
            return t[LENS_STATE_TYPE](
                header=self._header(rec.stamp_ns, rec.frame_id), focus_distance_m=float(rec.focus_m),
                optical_power_diopt=float(rec.power_diopt), settled=bool(rec.settled),
                sweep_id=int(rec.sweep_id) % 2**32, index=int(rec.index), sweep_length=int(rec.length),
                temperature_c=float(rec.temperature_c), driver=rec.driver)
        if isinstance(rec, ImageRecord):
            return self._image(rec.stamp_ns, rec.frame_id, rec.image, rec.encoding)
        if isinstance(rec, CameraInfoRecord):
            return self._camera_info(rec, self._header(rec.stamp_ns, rec.frame_id))
        header = self._header(rec.stamp_ns, rec.frame_id)
        n = int(rec.images.shape[0])
        if len(rec.focus_distances_m) != n or len(rec.image_stamps_ns) != n:
            raise DataError(f"stack at {rec.stamp_ns} ns: {n} images, {len(rec.focus_distances_m)} focus distances "
                            f"and {len(rec.image_stamps_ns)} image stamps")
        h, w = int(rec.images.shape[1]), int(rec.images.shape[2])
        info = CameraInfoRecord(rec.stamp_ns, rec.frame_id, w, h, rec.intrinsics)
        return t[FOCUS_STACK_TYPE](
            header=header, images=[self._image(rec.stamp_ns, rec.frame_id, img, "rgb8") for img in rec.images],
            focus_distances_m=np.asarray(rec.focus_distances_m, dtype=np.float64),
            image_stamps=[self._header(s, "").stamp for s in rec.image_stamps_ns],
            camera_info=self._camera_info(info, header), f_number=float(rec.f_number),
            focal_length_m=float(rec.focal_length_m), pixel_pitch_m=float(rec.pixel_pitch_m),
            sweep_id=int(rec.sweep_id) % 2**32)


@dataclass(frozen=True)
class RecorderConfig:
    """Parameters of the recorder node (``dfdnet record``), 1:1.

    Attributes:
        bag_path: rosbag2 folder to create ('' = ``rosbag2_<date>_<time>`` in the working directory).
        storage: ``"mcap"`` or ``"sqlite3"``.
        topics: absolute topic names to record (subscribed as soon as a publisher appears).
        queue_depth: subscription queue depth per topic (messages).
    """

    bag_path: str = field(default="", metadata={"description": "rosbag2 folder to create ('' = rosbag2_<date>)",
                                                "read_only": True})
    storage: str = field(default="mcap", metadata={"description": "bag storage", "choices": STORAGES})
    topics: tuple[str, ...] = field(
        default=(BagTopics.lens_state, BagTopics.image, BagTopics.camera_info, BagTopics.ground_truth),
        metadata={"description": "absolute topic names to record"},
    )
    queue_depth: int = field(default=100, metadata={"description": "subscription queue depth (messages)",
                                                    "range": (1, 10000, 1)})

    def __post_init__(self) -> None:
        if self.storage not in STORAGES:
            raise ConfigError(f"storage must be one of {STORAGES}, got {self.storage!r}")
        topics = tuple(self.topics)
        if not topics or any(not isinstance(t, str) or not t.startswith("/") or len(t) < 2 for t in topics):
            raise ConfigError(f"topics must be a non-empty list of absolute topic names, got {list(topics)!r}")
        object.__setattr__(self, "topics", tuple(dict.fromkeys(topics)))
        if isinstance(self.queue_depth, bool) or not isinstance(self.queue_depth, int) or \
                not 1 <= self.queue_depth <= 10000:
            raise ConfigError(f"queue_depth must be an int in [1, 10000], got {self.queue_depth!r}")


def default_bag_name(now_s: float) -> str:
    """``rosbag2_YYYY_MM_DD-HH_MM_SS`` (local time), the name ``ros2 bag record`` gives."""
    import time

    return time.strftime("rosbag2_%Y_%m_%d-%H_%M_%S", time.localtime(now_s))
