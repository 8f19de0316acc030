"""dfd_inference: focal stack in, REP-118 depth, camera info, point cloud and confidence out (see docs/NODES.md)."""

from __future__ import annotations

import time

import numpy as np
import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image, PointCloud2
from std_msgs.msg import Header

from dfdnet_core.errors import DfdError, StackError
from dfdnet_core.estimator import make_estimator
from dfdnet_core.node_configs import InferenceConfig
from dfdnet_core.pointcloud import depth_to_points
from dfdnet_ros.conversions import (
    camera_info_from_intrinsics,
    focal_stack_from_msg,
    numpy_to_image,
    pointcloud_msg,
    time_to_ns,
)
from dfdnet_ros.diagnostics import NodeDiagnostics
from dfdnet_ros.msg import FocusStack
from dfdnet_ros.params import declare_config


class DfdInferenceNode(Node):
    """Runs one DepthEstimator back end on every FocusStack; a bad stack is logged once and counted."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("dfd_inference", **kwargs)
        self.config = declare_config(self, InferenceConfig)
        options = {"checkpoint_path": self.config.checkpoint_path} if self.config.checkpoint_path else {}
        if self.config.num_threads > 0:
            options["num_threads"] = self.config.num_threads
        self.estimator = make_estimator(self.config.backend, **options)
        self._pub_depth = self.create_publisher(Image, "/dfd/depth", 2)
        self._pub_info = self.create_publisher(CameraInfo, "/dfd/camera_info", 2)
        self._pub_points = self.create_publisher(PointCloud2, "/dfd/points", 2)
        self._pub_aif = self.create_publisher(Image, "/dfd/all_in_focus", 2)
        self._pub_conf = self.create_publisher(Image, "/dfd/confidence", 2)
        self.create_subscription(FocusStack, "/dfd/stack", self._on_stack, 1)
        self.diagnostics = NodeDiagnostics(self, hardware_id=f"backend:{self.estimator.name}")
        self.diagnostics.values["backend"] = self.estimator.name
        self._last_sweep: int | None = None
        self.get_logger().info(f"depth back end {self.estimator.name!r}")

    def _on_stack(self, msg: FocusStack) -> None:
        t0 = time.perf_counter()
        try:
            stack = focal_stack_from_msg(msg)
            result = self.estimator.estimate(stack)
        except StackError as exc:
            self.diagnostics.drop("bad_stack", str(exc))
            return
        except DfdError as exc:
            self.diagnostics.drop("backend_error", str(exc))
            return
        except Exception as exc:
            self.diagnostics.drop("backend_error", f"{type(exc).__name__}: {exc}")
            return
        header = Header(stamp=msg.header.stamp, frame_id=msg.header.frame_id)
        self._pub_depth.publish(numpy_to_image(result.depth_m.astype(np.float32, copy=False), "32FC1", header))
        self._pub_info.publish(camera_info_from_intrinsics(stack.intrinsics, header))
        if self._pub_aif.get_subscription_count() > 0:
            self._pub_aif.publish(numpy_to_image(result.all_in_focus, "rgb8", header))
        if self._pub_conf.get_subscription_count() > 0:
            self._pub_conf.publish(numpy_to_image(result.confidence.astype(np.float32, copy=False), "32FC1", header))
        if self.config.publish_points and self._pub_points.get_subscription_count() > 0:
            points = depth_to_points(result.depth_m, stack.intrinsics)
            rgb = result.all_in_focus if self.config.points_with_rgb else None
            self._pub_points.publish(pointcloud_msg(points, rgb, header))
        self.diagnostics.count("stacks")
        self.diagnostics.values["ms_per_stack"] = f"{1e3 * (time.perf_counter() - t0):.1f}"
        self.diagnostics.latency((self.get_clock().now().nanoseconds - time_to_ns(msg.header.stamp)) * 1e-9)
        if self._last_sweep is not None and msg.sweep_id > self._last_sweep + 1:
            self.diagnostics.counters["sweeps_skipped"] += msg.sweep_id - self._last_sweep - 1
        self._last_sweep = int(msg.sweep_id)


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down."""
    try:
        with rclpy.init(args=args):
            rclpy.spin(DfdInferenceNode())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
