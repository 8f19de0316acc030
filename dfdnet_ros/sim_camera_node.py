"""sim_camera: a virtual focus-controllable camera that follows /dfd/lens_state (see docs/NODES.md)."""

from __future__ import annotations

from collections import deque

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dfdnet_core.sim_camera import LensTimeline, SimCamera, SimCameraConfig
from dfdnet_ros.conversions import camera_info_from_intrinsics, ns_to_time, numpy_to_image, time_to_ns
from dfdnet_ros.diagnostics import NodeDiagnostics
from dfdnet_ros.msg import LensState
from dfdnet_ros.params import declare_config


class SimCameraNode(Node):
    """Publishes rgb8 frames rendered at the lens's current focus, camera_info and ground-truth depth."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("sim_camera", **kwargs)
        self.config = declare_config(self, SimCameraConfig)
        self.camera = SimCamera(self.config)
        self.lens = LensTimeline(self.config.initial_focus_m)
        self._pub_image = self.create_publisher(Image, "camera/image_raw", 5)
        self._pub_info = self.create_publisher(CameraInfo, "camera/camera_info", 5)
        self._pub_depth = self.create_publisher(Image, "camera/ground_truth/depth", 2)
        self.create_subscription(LensState, "/dfd/lens_state", self._on_lens_state, 20)
        self.diagnostics = NodeDiagnostics(self, hardware_id="sim_camera")
        self._exposures: deque[int] = deque(maxlen=64)
        self.create_timer(1.0 / self.config.frame_rate_hz, self._on_tick)
        self.get_logger().info(
            f"simulated camera {self.config.width_px}x{self.config.height_px} px at {self.config.frame_rate_hz} Hz, "
            f"f={self.config.focal_length_m * 1e3:.1f} mm f/{self.config.f_number}, scene "
            f"{self.config.scene_near_m}-{self.config.scene_far_m} m"
        )

    def _on_lens_state(self, msg: LensState) -> None:
        if not self.lens.add(time_to_ns(msg.header.stamp), float(msg.focus_distance_m)):
            self.diagnostics.drop("bad_focus", f"lens state with focus {msg.focus_distance_m!r} m")
        self._flush()

    def _on_tick(self) -> None:
        """A new exposure starts now; it is published once the lens position during it is known."""
        self._exposures.append(self.get_clock().now().nanoseconds)
        self._flush()

    def _flush(self) -> None:
        now_ns = self.get_clock().now().nanoseconds
        max_wait_ns = round(self.config.max_readout_latency_s * 1e9)
        while self._exposures and (
            self.lens.known_until_ns > self._exposures[0] or now_ns - self._exposures[0] >= max_wait_ns
        ):
            self._publish_frame(self._exposures.popleft())

    def _publish_frame(self, exposure_ns: int) -> None:
        header = Header(stamp=ns_to_time(exposure_ns), frame_id=self.config.frame_id)
        focus_m = self.lens.focus_at(exposure_ns)
        image = self.camera.capture(focus_m)
        self._pub_image.publish(numpy_to_image(image, "rgb8", header))
        self._pub_info.publish(camera_info_from_intrinsics(self.camera.intrinsics, header))
        if self._pub_depth.get_subscription_count() > 0:
            self._pub_depth.publish(numpy_to_image(self.camera.depth_m, "32FC1", header))
        self.diagnostics.count("frames")
        self.diagnostics.values["focus_m"] = f"{focus_m:.4f}"


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down."""
    try:
        with rclpy.init(args=args):
            rclpy.spin(SimCameraNode())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
