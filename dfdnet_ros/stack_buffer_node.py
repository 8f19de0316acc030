"""stack_buffer: pairs camera frames with lens states and publishes FocusStack (see docs/NODES.md).

All pairing rules, bounds and drop reasons live in dfdnet_core.stack_assembler; this node converts messages.
"""

from __future__ import annotations

import rclpy
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, Image

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import DfdError
from dfdnet_core.node_configs import CameraOpticsConfig
from dfdnet_core.stack_assembler import (
    DROP_REASONS,
    SUPPORTED_ENCODINGS,
    CompletedStack,
    FrameSample,
    LensStateSample,
    StackAssembler,
    StackAssemblerConfig,
)
from dfdnet_ros.conversions import (
    focus_stack_to_msg,
    image_to_numpy,
    intrinsics_from_camera_info,
    time_to_ns,
)
from dfdnet_ros.diagnostics import NodeDiagnostics
from dfdnet_ros.msg import FocusStack, LensState
from dfdnet_ros.params import declare_config


class StackBufferNode(Node):
    """Never blocks, never grows: every rejected input is a counted drop on /diagnostics."""

    def __init__(self, **kwargs: object) -> None:
        super().__init__("stack_buffer", **kwargs)
        self.config = declare_config(self, StackAssemblerConfig)
        self.optics_config = declare_config(self, CameraOpticsConfig)
        self.assembler = StackAssembler(self.config)
        self._intrinsics: CameraIntrinsics | None = None
        self._pub = self.create_publisher(FocusStack, "/dfd/stack", 2)
        self.create_subscription(Image, "camera/image_raw", self._on_image, 10)
        self.create_subscription(CameraInfo, "camera/camera_info", self._on_camera_info, 10)
        self.create_subscription(LensState, "/dfd/lens_state", self._on_lens_state, 50)
        self.diagnostics = NodeDiagnostics(self, hardware_id="stack_buffer")
        self.diagnostics.values["mode"] = "rolling" if self.config.rolling else "per_sweep"
        if self.optics_config.optics is None:
            self.get_logger().warning(
                "focal_length_m, f_number or pixel_pitch_m is 0 (unknown): stacks cannot be published until set"
            )

    def _on_camera_info(self, msg: CameraInfo) -> None:
        try:
            self._intrinsics = intrinsics_from_camera_info(msg)
        except DfdError as exc:
            self.diagnostics.drop("bad_camera_info", str(exc))

    def _on_lens_state(self, msg: LensState) -> None:
        sample = LensStateSample(
            time_to_ns(msg.header.stamp), float(msg.focus_distance_m), float(msg.optical_power_diopt),
            bool(msg.settled), int(msg.sweep_id), int(msg.index), int(msg.sweep_length),
        )
        self._publish(self.assembler.add_lens_state(sample))

    def _on_image(self, msg: Image) -> None:
        stamp_ns = time_to_ns(msg.header.stamp)
        self.diagnostics.count("frames")
        if msg.encoding not in SUPPORTED_ENCODINGS:
            self.diagnostics.drop("encoding", f"image encoding {msg.encoding!r} is not one of {SUPPORTED_ENCODINGS}")
            return
        try:
            image = image_to_numpy(msg)
        except DfdError as exc:
            self.diagnostics.drop("bad_image", str(exc))
            return
        intr = self._intrinsics
        if intr is not None and (intr.width_px, intr.height_px) != (msg.width, msg.height):
            self.diagnostics.drop("size_mismatch", f"image is {msg.width}x{msg.height} px but camera_info says "
                                  f"{intr.width_px}x{intr.height_px} px")
            return
        frame = FrameSample(stamp_ns, image, msg.encoding, msg.header.frame_id, intr, self.optics_config.optics)
        self._publish(self.assembler.add_frame(frame))

    def _publish(self, stacks: list[CompletedStack]) -> None:
        for done in stacks:
            try:
                stack = done.to_focal_stack()
            except DfdError as exc:
                reason = "stack.no_camera_info" if done.intrinsics is None else "stack.no_optics"
                self.diagnostics.drop(reason, str(exc))
                continue
            self._pub.publish(focus_stack_to_msg(stack, done.stamps_ns))
            self.diagnostics.count("stacks")
            self.diagnostics.latency((self.get_clock().now().nanoseconds - done.stamp_ns) * 1e-9)
        self.diagnostics.set_drops(self.assembler.frame_drops, DROP_REASONS)
        for reason, n in self.assembler.lens_state_drops.items():
            self.diagnostics.set_drops({f"lens_state.{reason}": n})


def main(args: list[str] | None = None) -> int:
    """Run the node until shut down."""
    try:
        with rclpy.init(args=args):
            rclpy.spin(StackBufferNode())
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    return 0
