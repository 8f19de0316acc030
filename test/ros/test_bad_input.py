"""Bad input reaches stack_buffer and dfd_inference over DDS: a clear log line, a counted drop, never a crash.

A test node plays camera and focus controller with hand-made stamps (the assembler only looks at stamps), so the
expected stacks and drops are exact whatever the machine load.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from rosutil import Collector, Graph, diagnostics_values

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.optics import LensOptics
from dfdnet_core.stack import FocalStack
from dfdnet_ros.conversions import camera_info_from_intrinsics, focus_stack_to_msg, lens_state_msg, ns_to_time
from dfdnet_ros.conversions import numpy_to_image
from dfdnet_ros.dfd_inference_node import DfdInferenceNode
from dfdnet_ros.msg import FocusStack, LensState
from dfdnet_ros.stack_buffer_node import StackBufferNode

W, H = 48, 36
INTR = CameraIntrinsics(W, H, 60.0, 60.0, 20.0, 15.0)
FOCUS_M = (0.5, 1.0, 2.0)
T0 = 1_000_000_000_000
STEP_NS = 50_000_000


class Player:
    """Publishes lens states, frames and camera info with explicit stamps."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph
        node = graph.node("bad_input_player")
        self.lens = node.create_publisher(LensState, "/dfd/lens_state", 100)
        self.image = node.create_publisher(Image, "camera/image_raw", 100)
        self.info = node.create_publisher(CameraInfo, "camera/camera_info", 100)
        self.stack = node.create_publisher(FocusStack, "/dfd/stack", 10)
        self.t = T0
        self.sweep = 0

    def frame(self, stamp_ns: int, shape=(H, W, 3), encoding: str = "rgb8", info: bool = True) -> None:
        header = Header(stamp=ns_to_time(stamp_ns), frame_id="cam")
        if info:
            self.info.publish(camera_info_from_intrinsics(CameraIntrinsics(shape[1], shape[0], 60, 60, 20, 15),
                                                          header))
        channels = 1 if encoding == "mono8" else 3
        data = np.full(shape[:2] + (channels,), 100, np.uint8)
        msg = numpy_to_image(data if channels == 3 else data[..., 0], "rgb8" if channels == 3 else "mono8", header)
        msg.encoding = encoding
        self.image.publish(msg)

    def sweep_states(self, focus=FOCUS_M, frame_kwargs: dict[int, dict] | None = None) -> None:
        """One sweep: for each focus, move, settle, one frame exposed after settling."""
        for i, f in enumerate(focus):
            self.lens.publish(lens_state_msg(self.t, "cam", f, False, self.sweep, i, len(focus), None, "test"))
            self.lens.publish(lens_state_msg(self.t + 5_000_000, "cam", f, True, self.sweep, i, len(focus), None,
                                             "test"))
            self.graph.spin_until(lambda: False, 0.03)  # topics are not ordered with each other: pace like a camera
            self.frame(self.t + 10_000_000, **(frame_kwargs or {}).get(i, {}))
            self.graph.spin_until(lambda: False, 0.03)
            self.t += STEP_NS
        self.sweep += 1

    def close_sweep(self) -> None:
        """A final move that confirms the last frame (frames wait for the next lens state)."""
        self.lens.publish(lens_state_msg(self.t, "cam", FOCUS_M[0], False, self.sweep, 0, 3, None, "test"))


@pytest.fixture()
def graph():
    g = Graph(["t", "--ros-args", "--log-level", "error"])
    yield g
    g.close()


def _wait_drops(graph: Graph, diag: list, node: str, keys: dict[str, int], timeout_s: float = 20) -> dict[str, str]:
    def ok() -> bool:
        values = diagnostics_values(diag, node)
        return all(int(values.get(f"drops.{k}", 0)) >= n for k, n in keys.items())

    graph.spin_until(ok, timeout_s)
    return diagnostics_values(diag, node)


def test_stack_buffer_counts_bad_frames_and_lens_states_and_keeps_working(graph):
    optics = [Parameter("focal_length_m", value=0.008), Parameter("f_number", value=1.4),
              Parameter("pixel_pitch_m", value=6e-6), Parameter("require_intrinsics", value=True)]
    buffer = graph.add(StackBufferNode(context=graph.context, parameter_overrides=optics))
    probe = graph.node("bad_input_probe")
    got = Collector(probe, [("/dfd/stack", FocusStack), ("/diagnostics", DiagnosticArray)])
    player = Player(graph)
    graph.spin_until(lambda: player.lens.get_subscription_count() and player.image.get_subscription_count(), 20)
    header = Header(stamp=ns_to_time(T0), frame_id="cam")
    assert graph.spin_until(lambda: player.info.publish(camera_info_from_intrinsics(INTR, header)) or
                            buffer._intrinsics is not None, 20)

    player.sweep_states()  # good
    player.sweep_states(frame_kwargs={1: {"shape": (H + 2, W, 3)}})  # another size inside a sweep
    player.sweep_states(frame_kwargs={1: {"encoding": "yuv422"}})  # an unsupported encoding inside a sweep
    player.sweep_states(focus=(0.5, math.nan, 2.0))  # a NaN focus distance
    player.sweep_states()  # good again
    player.close_sweep()
    values = _wait_drops(graph, got["/diagnostics"], "stack_buffer",
                         {"size_mismatch": 1, "encoding": 1, "lens_state.bad_focus": 1, "bad_focus": 1})
    assert graph.spin_until(lambda: len(got["/dfd/stack"]) >= 2, 10), buffer.assembler.stats()
    stacks = got["/dfd/stack"]
    assert [s.sweep_id for s in stacks] == [0, 4], "only the two clean sweeps make stacks"
    assert all(list(s.focus_distances_m) == list(FOCUS_M) for s in stacks)
    assert values["_level"] == "0", values
    assert int(values.get("drops.size_mismatch", 0)) >= 1, (values, buffer.assembler.stats())
    assert int(values["drops.encoding"]) == 1
    assert int(values["drops.lens_state.bad_focus"]) == 1
    assert buffer.assembler.stats().stacks_out >= 2


def test_stack_buffer_without_camera_info_counts_and_publishes_nothing(graph):
    graph.add(StackBufferNode(context=graph.context, parameter_overrides=[
        Parameter("focal_length_m", value=0.008), Parameter("f_number", value=1.4),
        Parameter("pixel_pitch_m", value=6e-6), Parameter("require_intrinsics", value=True)]))
    probe = graph.node("no_info_probe")
    got = Collector(probe, [("/dfd/stack", FocusStack), ("/diagnostics", DiagnosticArray)])
    player = Player(graph)
    graph.spin_until(lambda: player.image.get_subscription_count() > 0, 20)
    graph.spin_until(lambda: False, 0.5)
    kwargs = {i: {"info": False} for i in range(3)}
    player.sweep_states(frame_kwargs=kwargs)
    player.sweep_states(frame_kwargs=kwargs)
    player.close_sweep()
    values = _wait_drops(graph, got["/diagnostics"], "stack_buffer", {"no_camera_info": 6})
    assert int(values["drops.no_camera_info"]) == 6
    assert got["/dfd/stack"] == []


def _stack_msg(n: int) -> FocusStack:
    rng = np.random.default_rng(0)
    stack = FocalStack(rng.integers(0, 255, (3, H, W, 3), dtype=np.uint8), np.array([0.5, 1.0, 2.0]), INTR,
                       LensOptics(0.008, 1.4, 6e-6), stamp_ns=T0)
    msg = focus_stack_to_msg(stack)
    msg.images, msg.image_stamps = msg.images[:n], msg.image_stamps[:n]
    msg.focus_distances_m = msg.focus_distances_m[:n]
    return msg


def test_inference_counts_bad_stacks_and_keeps_publishing(graph):
    graph.add(DfdInferenceNode(context=graph.context))
    probe = graph.node("inference_probe")
    got = Collector(probe, [("/dfd/depth", Image), ("/diagnostics", DiagnosticArray)])
    pub = probe.create_publisher(FocusStack, "/dfd/stack", 10)
    graph.spin_until(lambda: pub.get_subscription_count() > 0, 20)

    bad = []
    bad.append(_stack_msg(1))  # a stack of one image
    nan_focus = _stack_msg(3)
    nan_focus.focus_distances_m = [0.5, math.nan, 2.0]
    bad.append(nan_focus)
    no_info = _stack_msg(3)
    no_info.camera_info = CameraInfo()
    bad.append(no_info)
    mixed = _stack_msg(3)
    mixed.images[1] = numpy_to_image(np.zeros((H, W + 4, 3), np.uint8), "rgb8", Header())
    bad.append(mixed)
    good = _stack_msg(3)
    for msg in bad:
        pub.publish(msg)
        graph.spin_until(lambda: False, 0.2)  # the subscription keeps only the newest stack
    values = _wait_drops(graph, got["/diagnostics"], "dfd_inference", {"bad_stack": len(bad)})
    assert int(values["drops.bad_stack"]) == len(bad)
    pub.publish(good)
    assert graph.spin_until(lambda: len(got["/dfd/depth"]) >= 1, 20), "no depth after bad stacks"
    assert got["/dfd/depth"][0].height == H
