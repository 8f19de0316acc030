"""dfd_recorder: writes topics to a rosbag2 bag with the pure-Python writer of dfdnet_core.bag (`dfdnet record`).

``ros2 bag record`` is not installable from pip wheels; this node does its job for our topics. It subscribes to
each configured topic once a publisher appears (with the publisher's reliability and durability), takes the
serialised CDR bytes as they arrive (no deserialisation), and writes them with the receive time, the offered QoS
profiles, the message definition and the RIHS01 type hash, so ``ros2 bag play`` accepts the bag. The lens optics
(CameraOpticsConfig parameters) go into the bag's custom data for ``dfdnet eval --bag``.
"""

from __future__ import annotations

import time
from importlib import import_module
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from dfdnet_core.bag import BagWriter, RecorderConfig, default_bag_name, offered_qos
from dfdnet_core.errors import DataError
from dfdnet_core.node_configs import CameraOpticsConfig
from dfdnet_ros.params import declare_config


class RecorderNode(Node):
    """Records ``topics`` into ``bag_path``; the bag is finished by :meth:`close` (or ``destroy_node``)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__("dfd_recorder", **kwargs)
        self.config = declare_config(self, RecorderConfig)
        optics = declare_config(self, CameraOpticsConfig)
        self.bag_path = Path(self.config.bag_path or default_bag_name(time.time()))
        self.writer = BagWriter(self.bag_path, storage=self.config.storage)
        self.writer.set_optics(optics.focal_length_m, optics.f_number, optics.pixel_pitch_m)
        self.msgtypes: dict[str, str] = {}
        self._timer = self.create_timer(0.1, self._discover)
        self._discover()
        self.get_logger().info(f"recording {', '.join(self.config.topics)} into {self.bag_path}")

    def _discover(self) -> None:
        """Subscribe to configured topics that have a publisher now."""
        graph = dict(self.get_topic_names_and_types())
        for topic in self.config.topics:
            if topic in self.msgtypes or not graph.get(topic):
                continue
            msgtype = graph[topic][0]
            self.msgtypes[topic] = msgtype
            if len(graph[topic]) > 1:
                self.get_logger().warning(f"{topic} has several types {graph[topic]}; recording {msgtype}")
            try:
                package, sub, name = msgtype.split("/")
                msg_class = getattr(import_module(f"{package}.{sub}"), name)
            except (ValueError, ImportError, AttributeError) as exc:
                self.get_logger().error(f"cannot record {topic}: message type {msgtype!r} is not importable ({exc})")
                continue
            infos = [i.qos_profile for i in self.get_publishers_info_by_topic(topic)]
            offered = [offered_qos(q.history, q.depth, q.reliability, q.durability, q.deadline.nanoseconds,
                                   q.lifespan.nanoseconds, q.liveliness, q.liveliness_lease_duration.nanoseconds,
                                   q.avoid_ros_namespace_conventions) for q in infos]
            best_effort = any(q.reliability == ReliabilityPolicy.BEST_EFFORT for q in infos)
            latched = bool(infos) and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in infos)
            qos = QoSProfile(
                depth=self.config.queue_depth,
                reliability=ReliabilityPolicy.BEST_EFFORT if best_effort else ReliabilityPolicy.RELIABLE,
                durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
            )
            self.create_subscription(
                msg_class, topic, lambda data, t=topic, m=msgtype, o=offered: self._on_message(t, m, o, data),
                qos, raw=True,
            )
        if all(t in self.msgtypes for t in self.config.topics):
            self._timer.cancel()

    def _on_message(self, topic: str, msgtype: str, offered: list[Any], data: bytes) -> None:
        try:
            self.writer.write_raw(topic, msgtype, data, self.get_clock().now().nanoseconds, offered)
        except DataError as exc:  # the bag was closed at shutdown while this message was queued
            self.get_logger().debug(str(exc))

    def close(self) -> dict[str, int]:
        """Finish the bag (metadata.yaml); returns the messages written per topic."""
        self.writer.close()
        return dict(self.writer.counts)

    def destroy_node(self) -> None:
        self.close()
        super().destroy_node()


def record(
    setup: str,
    bag_path: Path | None,
    duration_s: float,
    params_file: Path | None = None,
    topics: tuple[str, ...] = (),
    storage: str = "mcap",
    overrides: dict[str, dict[str, Any]] | None = None,
) -> dict[str, int]:
    """Run a setup's nodes (as `dfdnet run` does) with a recorder for ``duration_s`` seconds (0 = until Ctrl-C).

    Args:
        setup: ``"sim"`` or ``"camera"`` (dfdnet_ros.launch_nodes.SETUPS).
        bag_path: rosbag2 folder to create (None = ``rosbag2_<date>``).
        duration_s: seconds to record.
        params_file: ROS 2 parameter file (default: the setup's in config/).
        topics: topics to record (default: RecorderConfig's camera, lens and ground-truth topics).
        storage: ``"mcap"`` or ``"sqlite3"``.
        overrides: node name -> parameter overrides, as for dfdnet_ros.runner.make_nodes.

    Returns:
        Messages written per topic.

    Raises:
        DataError: ``bag_path`` exists already.
    """
    from dfdnet_ros.runner import PipelineExecutors, default_params_file, make_nodes

    if bag_path is not None and bag_path.exists():
        raise DataError(f"bag folder {str(bag_path)!r} exists already; rosbag2 bags are never overwritten")
    params_file = params_file or default_params_file(setup)
    args = ["dfdnet", "--ros-args", "--params-file", str(params_file), "--log-level", "warn"]
    with rclpy.init(args=args):
        nodes = make_nodes(setup, overrides)
        optics = next((n.camera.optics for n in nodes if hasattr(n, "camera")), None) or next(
            (n.optics_config.optics for n in nodes if hasattr(n, "optics_config")), None)
        params = [Parameter("storage", value=storage)]
        params += [Parameter("bag_path", value=str(bag_path))] if bag_path is not None else []
        params += [Parameter("topics", value=list(topics))] if topics else []
        if optics is not None:
            params += [Parameter("focal_length_m", value=optics.focal_length_m),
                       Parameter("f_number", value=optics.f_number),
                       Parameter("pixel_pitch_m", value=optics.pixel_pitch_m)]
        recorder = RecorderNode(parameter_overrides=params)
        executor = PipelineExecutors([recorder, *nodes])
        print(f"dfdnet: recording {setup!r} pipeline into {recorder.bag_path} for {duration_s:g} s")
        start = time.monotonic()
        try:
            while duration_s <= 0 or time.monotonic() - start < duration_s:
                executor.spin_once(timeout_sec=0.05)
        except (KeyboardInterrupt, ExternalShutdownException):
            pass
        finally:
            executor.shutdown()
            counts = recorder.close()
            for node in [*nodes, recorder]:
                node.destroy_node()
    print(f"dfdnet: wrote {recorder.bag_path}: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
    return counts


def main(args: list[str] | None = None) -> int:
    """Run the recorder node until shut down (parameters as RecorderConfig and CameraOpticsConfig)."""
    try:
        with rclpy.init(args=args):
            node = RecorderNode()
            try:
                rclpy.spin(node)
            finally:
                node.destroy_node()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
