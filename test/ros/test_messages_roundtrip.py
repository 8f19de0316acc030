"""FocusStack and LensState cross Fast DDS intact, and the numpy conversions round-trip."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rosutil import Collector, Graph

from std_msgs.msg import Header

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import StackError
from dfdnet_core.optics import LensOptics
from dfdnet_core.stack import FocalStack
from dfdnet_ros.conversions import (
    focal_stack_from_msg,
    focus_stack_to_msg,
    image_to_numpy,
    lens_state_msg,
    ns_to_time,
    numpy_to_image,
    time_to_ns,
)
from dfdnet_ros.msg import FocusStack, LensState


def _stack(n: int = 4, h: int = 30, w: int = 40) -> FocalStack:
    rng = np.random.default_rng(3)
    intr = CameraIntrinsics(w, h, 55.5, 56.5, 19.25, 14.75)
    return FocalStack(
        rng.integers(0, 256, size=(n, h, w, 3), dtype=np.uint8),
        np.array([0.3, 0.45, 0.9, math.inf][:n]),
        intr,
        LensOptics(0.008, 1.4, 6e-6),
        stamp_ns=1_700_000_000_123_456_789,
        frame_id="cam_optical",
        sweep_id=41,
    )


def test_focus_stack_and_lens_state_cross_dds_intact():
    stack = _stack()
    stamps = (1_700_000_000_000_000_001, 1_700_000_000_033_000_002, 1_700_000_000_066_000_003, stack.stamp_ns)
    sent_stack = focus_stack_to_msg(stack, stamps)
    sent_lens = lens_state_msg(1_700_000_000_010_000_000, "cam_optical", 0.45, True, 41, 1, 4, 31.5, "sim")
    graph = Graph()
    try:
        talker, listener = graph.node("talker"), graph.node("listener")
        got = Collector(listener, [("/rt/stack", FocusStack), ("/rt/lens", LensState)])
        pub_stack = talker.create_publisher(FocusStack, "/rt/stack", 1)
        pub_lens = talker.create_publisher(LensState, "/rt/lens", 1)
        graph.spin_until(lambda: pub_stack.get_subscription_count() and pub_lens.get_subscription_count(), 20)

        def send_until_received() -> bool:
            if not got["/rt/stack"]:
                pub_stack.publish(sent_stack)
            if not got["/rt/lens"]:
                pub_lens.publish(sent_lens)
            return bool(got["/rt/stack"] and got["/rt/lens"])

        assert graph.spin_until(send_until_received, 20), "nothing came back over DDS"
    finally:
        graph.close()
    received = got["/rt/stack"][0]
    assert received == sent_stack
    back = focal_stack_from_msg(received)
    np.testing.assert_array_equal(back.images, stack.images)
    np.testing.assert_array_equal(back.focus_distances_m, stack.focus_distances_m)
    assert back.intrinsics == stack.intrinsics
    assert back.optics == stack.optics
    assert (back.stamp_ns, back.frame_id, back.sweep_id) == (stack.stamp_ns, "cam_optical", 41)
    assert [time_to_ns(t) for t in received.image_stamps] == list(stamps)
    lens = got["/rt/lens"][0]
    assert lens == sent_lens
    assert (lens.focus_distance_m, lens.optical_power_diopt, lens.settled) == (0.45, 1 / 0.45, True)
    assert (lens.sweep_id, lens.index, lens.sweep_length, lens.driver) == (41, 1, 4, "sim")
    assert lens.temperature_c == pytest.approx(31.5)


@pytest.mark.parametrize("encoding,dtype,channels", [("rgb8", np.uint8, 3), ("mono8", np.uint8, 1),
                                                       ("32FC1", np.float32, 1), ("16UC1", np.uint16, 1)])
def test_image_conversion_round_trips(encoding, dtype, channels):
    rng = np.random.default_rng(0)
    shape = (7, 9, channels) if channels > 1 else (7, 9)
    array = (rng.random(shape) * 200).astype(dtype)
    msg = numpy_to_image(array, encoding, Header(stamp=ns_to_time(5)))
    np.testing.assert_array_equal(image_to_numpy(msg), array)


def test_image_with_padded_rows_and_big_endian_data_is_read_correctly():
    depth = np.arange(12, dtype=np.float32).reshape(3, 4)
    msg = numpy_to_image(depth, "32FC1", Header())
    rows = depth.astype(">f4").tobytes()
    msg.is_bigendian, msg.step = 1, 20
    msg.data = b"".join(rows[r * 16:(r + 1) * 16] + b"\0\0\0\0" for r in range(3))
    np.testing.assert_array_equal(image_to_numpy(msg), depth)


def test_truncated_image_and_unknown_encoding_raise_clear_errors():
    msg = numpy_to_image(np.zeros((4, 5, 3), np.uint8), "rgb8", Header())
    msg.data = bytes(msg.data)[:-1]
    with pytest.raises(StackError, match=r"rgb8 image 5x4 px needs step >= 15 and 60 bytes, got step 15 and 59"):
        image_to_numpy(msg)
    msg.encoding = "yuv422_yuy2"
    with pytest.raises(StackError, match="encoding .yuv422_yuy2. is not supported"):
        image_to_numpy(msg)


def test_stack_message_with_one_image_or_mismatched_counts_is_rejected():
    msg = focus_stack_to_msg(_stack())
    one = FocusStack(images=msg.images[:1], focus_distances_m=msg.focus_distances_m[:1], camera_info=msg.camera_info,
                     f_number=1.4, focal_length_m=0.008, pixel_pitch_m=6e-6)
    with pytest.raises(StackError, match="at least 2 images, got 1"):
        focal_stack_from_msg(one)
    msg.focus_distances_m = list(msg.focus_distances_m)[:3]
    with pytest.raises(StackError, match="4 images but 3 focus distances"):
        focal_stack_from_msg(msg)
