"""Fuzz: more than 1,000 malformed or adversarial messages into stack_buffer and dfd_inference.

Delivery. About 2,300 messages (some 1,050 of them invalid by construction) are handed to the nodes' subscription
callbacks directly (``StackBufferNode._on_image``, ``_on_camera_info``, ``_on_lens_state`` and
``DfdInferenceNode._on_stack``): the code that runs right after rclpy deserialises a message, fast enough to fuzz
in bulk. A representative subset from the same generators (65 messages, every kind of defect among them) is
published over real Fast DDS from a probe node, one at a time, each waited for until the node has counted it;
any exception a callback lets escape is re-raised by the executor there.

What the messages are: Images with random sizes (0, 1, up to 2**32 - 1), encodings (supported, unsupported, empty,
misspelt), steps and data lengths (short, long, padded), big-endian flags and frame ids, with ordinary, duplicate,
out-of-order, negative and maximal stamps and jumps back in time; CameraInfos with zeros, NaN, inf and negative
focal lengths; LensStates with NaN/inf/zero/negative focus, indices past the sweep length, sweep lengths 0, 1 and
65535, negative stamps; FocusStacks with 0, 1 or 2 images, mismatched counts, mixed sizes, NaN/zero/negative/-inf/
equal focus distances, zero, NaN or infinite optics, missing or NaN camera_info or one of another size, huge
declared or empty images, foreign encodings, truncated data, short steps, negative stamps, and 1x1 and 5x300 px
stacks. Now and then a clean stretch (a good camera_info and one whole sweep) lets stacks through mid-fuzz.

What is asserted, per message: no exception escapes; a message that is invalid by construction (decided by the
test's own rules from the message's documented contract, before the node sees it) raises the node's drop count
in its diagnostics at once (a stack: by exactly one); and nothing is lost silently: for stack_buffer every frame
is used, dropped with a counted reason, or held (bounded), and every lens state kept or counted; for
dfd_inference every stack yields a depth image or a counted drop. Afterwards a valid sweep published over DDS
still becomes a FocusStack and an accurate depth image.

A stamp whose nanosec field is >= 1e9 is not rejected: like rclpy.time.Time, the nodes read it as
sec + nanosec / 1e9 (a later, valid time). A LensState that is not settled carries no focus the buffer uses, so a
NaN focus on it is not a defect (frames exposed then are dropped as "lens_moving").
"""
from __future__ import annotations

import copy
import math
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pytest

from rosutil import Collector, Graph, diagnostics_values  # first: skips the module without ROS


from builtin_interfaces.msg import Time
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.parameter import Parameter
from sensor_msgs.msg import CameraInfo, Image
from std_msgs.msg import Header

from dfdnet_core.metrics import depth_metrics
from dfdnet_core.optics import disparity_uniform_focus_m
from dfdnet_core.sim_camera import SimCamera, SimCameraConfig
from dfdnet_core.stack import FocalStack
from dfdnet_core.stack_assembler import DROP_REASONS
from dfdnet_ros.conversions import (
    camera_info_from_intrinsics,
    focus_stack_to_msg,
    image_to_numpy,
    lens_state_msg,
    ns_to_time,
    numpy_to_image,
    time_to_ns,
)
from dfdnet_ros.dfd_inference_node import DfdInferenceNode
from dfdnet_ros.msg import FocusStack, LensState
from dfdnet_ros.stack_buffer_node import StackBufferNode

W, H = 96, 72  # valid image size (small: the machine is shared)
NEAR_M, FAR_M, N_FOCUS = 0.4, 2.0, 5
SIM = SimCameraConfig(width_px=W, height_px=H)
OPTICS = SIM.optics
BUFFER_PARAMS = {
    "focal_length_m": OPTICS.focal_length_m, "f_number": OPTICS.f_number, "pixel_pitch_m": OPTICS.pixel_pitch_m,
    "require_intrinsics": True,
}
BUFFER_ENCODINGS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}  # what stack_buffer accepts
FOREIGN_ENCODINGS = {"mono16": 2, "16UC1": 2, "32FC1": 4, "yuv422": 2, "bayer_rggb8": 1, "rgb16": 6, "8UC3": 3,
                     "": 3, "RGB8": 3, "rgb8 ": 3, "\u00fc" * 40: 3}
MAX_STACK = 64  # StackAssemblerConfig.max_stack_size default
WAIT_S = 30.0


# ------------------------------------------------------------------------------------------------ fixtures
@dataclass
class Pipeline:
    graph: Graph
    buffer: StackBufferNode
    inference: DfdInferenceNode
    got: Collector
    publish: dict[str, Callable[[object], None]]


@pytest.fixture(scope="module")
def pipe() -> Iterator[Pipeline]:
    graph = Graph(["test", "--ros-args", "--log-level", "fatal"])
    try:
        buffer = graph.add(StackBufferNode(
            parameter_overrides=[Parameter(k, value=v) for k, v in BUFFER_PARAMS.items()], context=graph.context))
        inference = graph.add(DfdInferenceNode(context=graph.context))
        probe = graph.node("fuzz_probe")
        got = Collector(probe, [("/dfd/stack", FocusStack), ("/dfd/depth", Image), ("/diagnostics", DiagnosticArray)])
        pubs = {
            "image": probe.create_publisher(Image, "/camera/image_raw", 10),
            "camera_info": probe.create_publisher(CameraInfo, "/camera/camera_info", 10),
            "lens_state": probe.create_publisher(LensState, "/dfd/lens_state", 10),
            "stack": probe.create_publisher(FocusStack, "/dfd/stack", 10),
        }
        matched = [*pubs.values(), buffer._pub, inference._pub_depth]  # discovery done both ways
        assert graph.spin_until(lambda: all(p.get_subscription_count() >= 1 for p in matched), WAIT_S)
        pipe = Pipeline(graph, buffer, inference, got, {k: p.publish for k, p in pubs.items()})
        yield pipe
    finally:
        graph.close()


@pytest.fixture(scope="module")
def scene() -> tuple[SimCamera, list[float]]:
    camera = SimCamera(SIM)
    return camera, sorted(disparity_uniform_focus_m(NEAR_M, FAR_M, N_FOCUS))


# ------------------------------------------------------------------------------------------- accounting
def _buffer_drops(node: StackBufferNode) -> tuple[int, int, int]:
    """(frame drops, lens-state drops, camera-info drops) as the node's diagnostics report them."""
    values = {kv.key: int(kv.value) for kv in node.diagnostics.status().values if kv.key.startswith("drops.")}
    frame = sum(n for k, n in values.items() if k[6:] in DROP_REASONS)
    lens = sum(n for k, n in values.items() if k.startswith("drops.lens_state."))
    info = values.get("drops.bad_camera_info", 0)
    assert frame + lens + info == values["drops.total"], f"unclassified drop reasons in {values}"
    return frame, lens, info


def _buffer_books_balance(node: StackBufferNode) -> bool:
    """Whether the identities of :func:`_check_buffer_books` hold now (a callback may still be running)."""
    stats = node.assembler.stats()
    frame_drops, lens_drops, _ = _buffer_drops(node)
    return (node.diagnostics.counters["frames"] == frame_drops + stats.frames_used + stats.frames_held
            and stats.lens_states_in == stats.lens_states_kept + lens_drops)


def _check_buffer_books(node: StackBufferNode) -> None:
    """Every frame is used, dropped (counted) or held within the bounds; every lens state is kept or dropped."""
    stats = node.assembler.stats()
    frame_drops, lens_drops, _ = _buffer_drops(node)
    frames_seen = node.diagnostics.counters["frames"]
    assert frames_seen == frame_drops + stats.frames_used + stats.frames_held, (frames_seen, stats)
    assert stats.frames_held <= node.config.max_pending_frames + node.config.max_stack_size
    assert stats.lens_states_in == stats.lens_states_kept + lens_drops, stats


def _inference_books(node: DfdInferenceNode) -> tuple[int, int]:
    """(depth images published, stacks dropped) from the node's diagnostics."""
    values = {kv.key: kv.value for kv in node.diagnostics.status().values}
    return int(values.get("stacks", 0)), int(values["drops.total"])


# --------------------------------------------------------------------------------------- message makers
@dataclass
class Clock:
    """One time line for both streams, so frames pair with lens states; the fuzz bends it now and then."""

    now_ns: int = 10**12
    step: int = 0  # lens step counter of the 5-distance ping-pong sweep
    moving: bool = True  # the last lens state was a move (the next is its settle)


def _stamp(rng: np.random.Generator, clock: Clock) -> tuple[Time, bool]:
    """A frame stamp: mostly the next one, sometimes duplicate, older, far back, or absurd; and whether negative."""
    kind = rng.choice(["next"] * 12 + ["same", "older", "jump_back", "negative", "max", "nanosec_overflow"])
    if kind == "next":
        clock.now_ns += int(rng.integers(1, 30)) * 1_000_000
    elif kind == "older":
        return ns_to_time(max(clock.now_ns - 10_000_000, 0)), False
    elif kind == "jump_back":
        clock.now_ns = max(clock.now_ns - 5_000_000_000, 0)
    elif kind == "negative":
        return Time(sec=int(rng.integers(-2**31, 0)), nanosec=int(rng.integers(0, 10**9))), True
    elif kind == "max":
        return Time(sec=2**31 - 1, nanosec=999_999_999), False
    elif kind == "nanosec_overflow":
        return Time(sec=clock.now_ns // 10**9, nanosec=2**32 - 1), False
    return ns_to_time(clock.now_ns), False


def _random_image(rng: np.random.Generator, stamp: Time) -> tuple[Image, bool]:
    """An Image with random fields; returns it and whether stack_buffer can decode it (the test's own rule)."""
    encoding = str(rng.choice(list(BUFFER_ENCODINGS) + list(FOREIGN_ENCODINGS)))
    bytes_per_px = BUFFER_ENCODINGS.get(encoding) or FOREIGN_ENCODINGS[encoding]
    sizes = [0, 1, 2, 7, W, H, 640, 2**16, 2**31, 2**32 - 1]
    width = int(rng.choice(sizes)) if rng.random() < 0.5 else int(rng.integers(1, 200))
    height = int(rng.choice(sizes)) if rng.random() < 0.5 else int(rng.integers(1, 200))
    row = width * bytes_per_px
    step = int(rng.choice([0, max(row - 1, 0), row, row + 3, int(rng.integers(0, 2**32)), 2**32 - 1]))
    step = min(step, 2**32 - 1)
    need = step * height
    length = int(rng.choice([0, max(need - 1, 0), need, need + 5])) if need <= 150_000 else int(rng.integers(0, 4096))
    if rng.random() < 0.2:
        length = int(rng.integers(0, 4096))
    msg = Image(header=Header(stamp=stamp, frame_id=str(rng.choice(["cam", "", "x" * 300, "\u2603"]))),
                height=height, width=width, encoding=encoding, is_bigendian=int(rng.integers(0, 2)), step=step)
    msg.data = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    decodable = (encoding in BUFFER_ENCODINGS and width > 0 and height > 0 and step >= row
                 and length >= step * height)
    return msg, decodable


def _valid_image(rng: np.random.Generator, stamp: Time, size: tuple[int, int] = (W, H), encoding: str = "") -> Image:
    encoding = encoding or str(rng.choice(list(BUFFER_ENCODINGS)))
    channels = BUFFER_ENCODINGS[encoding]
    shape = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    return numpy_to_image(rng.integers(0, 256, shape, dtype=np.uint8), encoding, Header(stamp=stamp, frame_id="cam"))


def _camera_info(rng: np.random.Generator) -> tuple[CameraInfo, bool]:
    """A CameraInfo, good or bad; returns it and whether it is bad (no usable intrinsics, by the test's rule)."""
    f_px = SIM.focal_length_m / SIM.pixel_pitch_m
    msg = camera_info_from_intrinsics(SIM.intrinsics, Header(frame_id="cam"))
    kind = str(rng.choice(["good", "good_k_only", "zeros", "nan", "inf_p", "negative", "zero_size", "nan_p_zero_k"]))
    if kind == "good_k_only":
        msg.p = [0.0] * 12  # P unset: K is used
    elif kind == "zeros":
        msg.k, msg.p = [0.0] * 9, [0.0] * 12
    elif kind == "nan":
        msg.k, msg.p = [math.nan] * 9, [math.nan] * 12
    elif kind == "inf_p":
        msg.p = [math.inf, 0.0, 47.5, 0.0, 0.0, f_px, 35.5, 0.0, 0.0, 0.0, 1.0, 0.0]
    elif kind == "negative":
        msg.k = [-f_px, 0.0, 47.5, 0.0, -f_px, 35.5, 0.0, 0.0, 1.0]
        msg.p = [0.0] * 12
    elif kind == "zero_size":
        msg.width = 0
    elif kind == "nan_p_zero_k":
        msg.p, msg.k = [math.nan] * 12, [0.0] * 9
    return msg, kind not in ("good", "good_k_only")


def _lens_state(rng: np.random.Generator, clock: Clock, clean: bool = False) -> tuple[LensState, bool]:
    """The next move or settle of a 5-distance ping-pong sweep, or one with a defect; and whether it is malformed."""
    if clock.moving:
        settled = True
        clock.now_ns += 10_000_000
    else:
        settled = False
        clock.step += 1
        clock.now_ns += int(rng.integers(1, 40)) * 1_000_000
    clock.moving = not settled
    sweep_id, index = divmod(clock.step, N_FOCUS)  # index: position in driving order; odd sweeps run far -> near
    focus_m, length = [0.5, 0.7, 1.0, 1.4, 2.0][index if sweep_id % 2 == 0 else N_FOCUS - 1 - index], N_FOCUS
    defect = "none" if clean else str(rng.choice(["none"] * 6 + ["focus", "index", "length", "stamp"]))
    if defect == "focus":
        focus_m = float(rng.choice([math.nan, math.inf, -math.inf, 0.0, -1.0]))
        settled = True
    elif defect == "index":
        index, settled = int(rng.choice([N_FOCUS, 1000, 2**16 - 1])), True
    elif defect == "length":
        length, settled = int(rng.choice([0, 1, MAX_STACK + 1, 2**16 - 1])), True
        index = min(index, max(length - 1, 0))
    msg = lens_state_msg(clock.now_ns, "cam", 1.0, settled, sweep_id % 2**32, index, length, 31.0, "fuzz")
    msg.focus_distance_m = focus_m
    msg.optical_power_diopt = 1.0 / focus_m if focus_m != 0.0 and math.isfinite(focus_m) else math.nan
    if defect == "stamp":
        msg.header.stamp = Time(sec=int(rng.integers(-2**31, 0)), nanosec=0)
    return msg, defect != "none"


def _clean_sweep(rng: np.random.Generator, clock: Clock) -> list[tuple[str, object]]:
    """A well-formed stretch: a good camera_info, then one whole sweep (move, settle, 2 frames per step)."""
    out: list[tuple[str, object]] = [("camera_info", camera_info_from_intrinsics(SIM.intrinsics, Header()))]
    if clock.moving:
        out.append(("lens_state", _lens_state(rng, clock, clean=True)[0]))  # settle the pending move
    clock.step = (clock.step // N_FOCUS + 1) * N_FOCUS - 1  # the next move starts a sweep
    for _ in range(N_FOCUS):
        out += [("lens_state", _lens_state(rng, clock, clean=True)[0]) for _ in range(2)]
        for _ in range(2):
            clock.now_ns += 15_000_000
            out.append(("image", _valid_image(rng, ns_to_time(clock.now_ns), encoding="rgb8")))
    out.append(("lens_state", _lens_state(rng, clock, clean=True)[0]))  # the next move confirms the last frames
    return out


def _valid_stack(rng: np.random.Generator, size: tuple[int, int] = (32, 24), n: int = N_FOCUS) -> FocusStack:
    w, h = size
    intr = SIM.intrinsics.scaled(w, h)
    images = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    focus = np.array(sorted(disparity_uniform_focus_m(NEAR_M, FAR_M, n)))
    return focus_stack_to_msg(FocalStack(images, focus, intr, OPTICS, 10**9, "cam", 1))


_COUNT_DEFECTS = ("no_images", "one_image", "two_images", "fewer_focus", "more_focus")


def _stack_defects() -> dict[str, Callable[[FocusStack, np.random.Generator], None]]:
    """Ways to break a valid FocusStack; each alone makes it invalid."""

    def image(msg: FocusStack, rng: np.random.Generator) -> Image:
        return msg.images[int(rng.integers(0, len(msg.images)))] if len(msg.images) else Image()

    def set_focus(msg: FocusStack, rng: np.random.Generator, value: float) -> None:
        focus = list(msg.focus_distances_m)
        focus[int(rng.integers(0, len(focus)))] = value
        msg.focus_distances_m = focus

    def huge(msg: FocusStack, rng: np.random.Generator) -> None:
        img = image(msg, rng)
        img.width, img.height, img.step = 2**31, 2**31, 2**32 - 1

    def empty(msg: FocusStack, rng: np.random.Generator) -> None:
        img = image(msg, rng)
        img.width = img.height = 0

    def truncated(msg: FocusStack, rng: np.random.Generator) -> None:
        img = image(msg, rng)
        img.data = bytes(img.data)[: img.step * img.height - 1]

    def short_step(msg: FocusStack, rng: np.random.Generator) -> None:
        img = image(msg, rng)
        img.step = max(img.width * 3 - 1, 0)

    return {
        "no_images": lambda m, r: (setattr(m, "images", []), setattr(m, "focus_distances_m", [])),
        "one_image": lambda m, r: (setattr(m, "images", m.images[:1]), setattr(m, "focus_distances_m",
                                                                            m.focus_distances_m[:1])),
        "two_images": lambda m, r: (setattr(m, "images", m.images[:2]), setattr(m, "focus_distances_m",
                                                                             m.focus_distances_m[:2])),
        "fewer_focus": lambda m, r: setattr(m, "focus_distances_m", m.focus_distances_m[:-1]),
        "more_focus": lambda m, r: setattr(m, "focus_distances_m", [*m.focus_distances_m, 3.0]),
        "mixed_sizes": lambda m, r: m.images.__setitem__(
            1, numpy_to_image(np.zeros((m.images[0].height + 2, m.images[0].width, 3), np.uint8), "rgb8", Header())),
        "nan_focus": lambda m, r: set_focus(m, r, math.nan),
        "zero_focus": lambda m, r: set_focus(m, r, 0.0),
        "negative_focus": lambda m, r: set_focus(m, r, -0.5),
        "minus_inf_focus": lambda m, r: set_focus(m, r, -math.inf),
        "equal_focus": lambda m, r: setattr(m, "focus_distances_m", [1.0] * len(m.focus_distances_m)),
        "zero_optics": lambda m, r: setattr(m, str(r.choice(["f_number", "focal_length_m", "pixel_pitch_m"])), 0.0),
        "nan_optics": lambda m, r: setattr(m, str(r.choice(["f_number", "focal_length_m", "pixel_pitch_m"])),
                                           math.nan),
        "inf_focal_length": lambda m, r: setattr(m, "focal_length_m", math.inf),
        "no_camera_info": lambda m, r: setattr(m, "camera_info", CameraInfo()),
        "nan_camera_info": lambda m, r: (setattr(m.camera_info, "k", [math.nan] * 9),
                                         setattr(m.camera_info, "p", [math.nan] * 12)),
        "camera_info_size": lambda m, r: setattr(m.camera_info, "width", m.camera_info.width + 1),
        "huge_image": huge,
        "empty_image": empty,
        "foreign_encoding": lambda m, r: setattr(image(m, r), "encoding", str(r.choice(
            ["32FC1", "mono16", "yuv422", "rgba8", ""]))),
        "truncated_data": truncated,
        "short_step": short_step,
        "negative_stamp": lambda m, r: setattr(m.header, "stamp", Time(sec=-5, nanosec=0)),
    }


# ------------------------------------------------------------------------------------------------ tests
def _feed_buffer(pipe: Pipeline, rng: np.random.Generator, n_messages: int,
                 deliver: Callable[[str, object], None]) -> Counter[str]:
    """Send ``n_messages`` adversarial messages to stack_buffer, checking the books after each."""
    node = pipe.buffer
    clock = Clock()
    sent: Counter[str] = Counter()
    burst: list[tuple[str, object]] = []
    for _ in range(n_messages):
        before = _buffer_drops(node)
        if not burst and rng.random() < 1 / 40:
            burst.extend(_clean_sweep(rng, clock))
        kind, msg = burst.pop(0) if burst else (str(rng.choice(
            ["random_image"] * 4 + ["valid_image"] * 3 + ["lens_state"] * 3 + ["camera_info"])), None)
        if msg is not None:  # part of a clean sweep
            bad, slot = False, {"image": 0, "lens_state": 1, "camera_info": 2}[kind]
            deliver(kind, msg)
            kind = f"clean_{kind}"
        elif kind == "random_image":
            stamp, _ = _stamp(rng, clock)
            msg, decodable = _random_image(rng, stamp)
            bad, slot = not decodable, 0
            deliver("image", msg)
        elif kind == "valid_image":
            size = (W, H) if rng.random() < 0.9 else (int(rng.integers(1, 50)), int(rng.integers(1, 50)))
            stamp, negative = _stamp(rng, clock)
            # require_intrinsics: a frame needs a camera_info of its own size (the good ones are all W x H)
            bad, slot = negative or size != (W, H) or node._intrinsics is None, 0
            msg = _valid_image(rng, stamp, size, "rgb8" if rng.random() < 0.8 else "")
            deliver("image", msg)
        elif kind == "lens_state":
            msg, bad = _lens_state(rng, clock)
            slot = 1
            deliver("lens_state", msg)
        else:
            msg, bad = _camera_info(rng)
            slot = 2
            deliver("camera_info", msg)
        after = _buffer_drops(node)
        sent[f"{kind}{'_bad' if bad else ''}"] += 1
        if bad:  # counted at once (a jump back in time may also discard held frames: hence >=)
            assert after[slot] >= before[slot] + 1, f"malformed {kind} was not counted: {msg}"
        if kind == "camera_info" and not bad:
            assert after[2] == before[2]
        _check_buffer_books(node)
    return sent


def test_stack_buffer_counts_every_malformed_message_via_callbacks(pipe: Pipeline) -> None:
    rng = np.random.default_rng(5)
    callbacks = {"image": pipe.buffer._on_image, "lens_state": pipe.buffer._on_lens_state,
                 "camera_info": pipe.buffer._on_camera_info}
    sent = _feed_buffer(pipe, rng, 1800, lambda kind, msg: callbacks[kind](msg))
    n_bad = sum(v for k, v in sent.items() if k.endswith("_bad"))
    assert n_bad >= 600, sent
    frame_drops, lens_drops, info_drops = _buffer_drops(pipe.buffer)
    assert frame_drops >= sent["random_image_bad"] and lens_drops >= sent["lens_state_bad"]
    assert info_drops == sent["camera_info_bad"]
    reasons = {k for k, v in pipe.buffer.diagnostics.total_drops().items() if v}
    # the fuzz reached the decoder's, the node's and the assembler's checks alike, pairing included
    assert {"bad_image", "encoding", "size_mismatch", "bad_camera_info", "bad_stamp", "lens_moving", "clock_jump",
            "lens_state.bad_focus", "lens_state.bad_index", "lens_state.bad_stamp", "lens_state.stack_too_long",
            } <= reasons, reasons
    assert pipe.buffer.diagnostics.counters["stacks"] >= 3  # and whole sweeps still made it through


def _feed_inference(pipe: Pipeline, rng: np.random.Generator, n_messages: int,
                    deliver: Callable[[FocusStack], None]) -> Counter[str]:
    """Send ``n_messages`` stacks (1 in 10 valid, the rest with 1-3 defects), checking the books after each."""
    defects = _stack_defects()
    base = {(32, 24): _valid_stack(rng), (1, 1): _valid_stack(rng, (1, 1)), (5, 300): _valid_stack(rng, (5, 300))}
    sent: Counter[str] = Counter()
    for _ in range(n_messages):
        msg = copy.deepcopy(base[list(base)[int(rng.integers(0, len(base)))]])
        chosen = [] if rng.random() < 0.1 else list(rng.choice(list(defects), int(rng.integers(1, 4)), replace=False))
        for name in sorted(chosen, key=lambda d: d in _COUNT_DEFECTS):  # count changes last: each stays a defect
            defects[name](msg, rng)
        before = _inference_books(pipe.inference)
        deliver(msg)
        published, dropped = _inference_books(pipe.inference)
        sent["bad" if chosen else "valid"] += 1
        if chosen:
            assert (published, dropped) == (before[0], before[1] + 1), f"stack with {chosen} not counted as a drop"
        else:
            assert published + dropped == sum(before) + 1  # tiny valid stacks may legitimately fail in the back end
    return sent


def test_dfd_inference_counts_every_malformed_stack_via_callbacks(pipe: Pipeline) -> None:
    rng = np.random.default_rng(7)
    before = _inference_books(pipe.inference)
    sent = _feed_inference(pipe, rng, 400, pipe.inference._on_stack)
    published, dropped = _inference_books(pipe.inference)
    assert dropped - before[1] >= sent["bad"] >= 330
    assert published - before[0] >= 1  # valid stacks among the fuzz still produce depth
    reasons = {k for k, v in pipe.inference.diagnostics.total_drops().items() if v}
    assert reasons, "no drop reasons recorded"


def test_representative_malformed_messages_over_dds_are_counted(pipe: Pipeline) -> None:
    """The same generators, published over Fast DDS; each message is waited for until the node counted it."""
    graph, buffer, inference = pipe.graph, pipe.buffer, pipe.inference

    def deliver_buffer(kind: str, msg: object) -> None:
        frames, lens_in = buffer.diagnostics.counters["frames"], buffer.assembler.stats().lens_states_in
        info_drops, intr = _buffer_drops(buffer)[2], buffer._intrinsics
        pipe.publish[kind](msg)
        arrived = {  # counted on entry to the callback: wait for its end too (the books balance again)
            "image": lambda: buffer.diagnostics.counters["frames"] > frames and _buffer_books_balance(buffer),
            "lens_state": lambda: buffer.assembler.stats().lens_states_in > lens_in and _buffer_books_balance(buffer),
            "camera_info": lambda: _buffer_drops(buffer)[2] > info_drops or buffer._intrinsics is not intr,
        }[kind]
        assert graph.spin_until(arrived, WAIT_S), f"{kind} never arrived or was lost: {msg}"

    def deliver_stack(msg: FocusStack) -> None:
        total = sum(_inference_books(inference))
        pipe.publish["stack"](msg)
        assert graph.spin_until(lambda: sum(_inference_books(inference)) > total, WAIT_S), "stack never arrived"

    # good camera infos that equal the current one do not change anything observable: send fresh objects only
    rng = np.random.default_rng(11)
    sent = _feed_buffer(pipe, rng, 40, deliver_buffer)
    assert sum(v for k, v in sent.items() if k.endswith("_bad")) >= 15
    sent = _feed_inference(pipe, np.random.default_rng(13), 25, deliver_stack)
    assert sent["bad"] >= 15
    # the counts reach /diagnostics too
    k = len(pipe.got["/diagnostics"])
    assert graph.spin_until(lambda: any(s.name == "dfd_inference" for a in pipe.got["/diagnostics"][k:]
                                        for s in a.status), WAIT_S)
    assert graph.spin_until(lambda: any(s.name == "stack_buffer" for a in pipe.got["/diagnostics"][k:]
                                        for s in a.status), WAIT_S)
    published = diagnostics_values(pipe.got["/diagnostics"], "stack_buffer")
    assert int(published["drops.total"]) >= 400 and published["_level"] in ("0", "1")  # OK or WARN, not ERROR


def test_valid_sweep_after_the_fuzz_still_yields_a_stack_and_accurate_depth(
    pipe: Pipeline, scene: tuple[SimCamera, list[float]]
) -> None:
    graph, got = pipe.graph, pipe.got
    rng = np.random.default_rng(17)
    _feed_buffer(pipe, rng, 50, lambda kind, msg: {"image": pipe.buffer._on_image,
                                                  "lens_state": pipe.buffer._on_lens_state,
                                                  "camera_info": pipe.buffer._on_camera_info}[kind](msg))
    _feed_inference(pipe, rng, 30, pipe.inference._on_stack)
    camera, plan_m = scene

    def send(kind: str, msg: object, arrived: Callable[[], bool]) -> None:
        pipe.publish[kind](msg)
        assert graph.spin_until(lambda: arrived() and _buffer_books_balance(pipe.buffer), WAIT_S), f"{kind} lost"

    buffer = pipe.buffer

    def frames() -> int:
        return int(buffer.diagnostics.counters["frames"])

    def lens_in() -> int:
        return buffer.assembler.stats().lens_states_in

    # Re-synchronise both streams after the fuzz's absurd stamps, as after a bag loop: a jump back in time resets.
    n = frames()
    send("image", _valid_image(rng, Time(sec=0)), lambda: frames() > n)
    n = lens_in()
    send("lens_state", lens_state_msg(0, "cam", 1.0, False, 0, 0, N_FOCUS, 31.0, "t"), lambda: lens_in() > n)
    info = camera_info_from_intrinsics(camera.intrinsics, Header(frame_id="camera_optical_frame"))
    send("camera_info", info, lambda: buffer._intrinsics == camera.intrinsics)
    t0 = 10**10
    for i, focus_m in enumerate(plan_m):  # one sweep near -> far: move, settle, expose
        t = t0 + i * 50_000_000
        for stamp, settled in ((t, False), (t + 10_000_000, True)):
            n = lens_in()
            send("lens_state", lens_state_msg(stamp, "cam", focus_m, settled, 7, i, N_FOCUS, 31.0, "t"),
                 lambda n=n: lens_in() > n)
        n = frames()
        header = Header(stamp=ns_to_time(t + 20_000_000), frame_id="camera_optical_frame")
        send("image", numpy_to_image(camera.capture(focus_m), "rgb8", header), lambda n=n: frames() > n)
    n = lens_in()
    send("lens_state", lens_state_msg(t0 + N_FOCUS * 50_000_000, "cam", plan_m[-1], False, 8, 0, N_FOCUS, 31.0, "t"),
         lambda: lens_in() > n)  # the next move confirms the last frame
    newest_ns = t0 + (N_FOCUS - 1) * 50_000_000 + 20_000_000  # the stack and its depth carry the newest frame's stamp

    def ours(topic: str) -> list[object]:
        return [m for m in got[topic] if time_to_ns(m.header.stamp) == newest_ns]

    assert graph.spin_until(lambda: ours("/dfd/stack") and ours("/dfd/depth"), WAIT_S)
    (stack,), (depth_msg,) = ours("/dfd/stack"), ours("/dfd/depth")
    assert list(stack.focus_distances_m) == pytest.approx(plan_m) and stack.sweep_id == 7
    assert [(im.width, im.height, im.encoding) for im in stack.images] == [(W, H, "rgb8")] * N_FOCUS
    depth = image_to_numpy(depth_msg)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    metrics = depth_metrics(depth, camera.depth_m)
    assert metrics["abs_rel"] <= 0.15 and metrics["coverage"] >= 0.5, metrics
