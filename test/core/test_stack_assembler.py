"""Tests of dfdnet_core.stack_assembler: pairing frames with lens states, drop reasons, bounds."""

from __future__ import annotations

import math
import random
import tracemalloc
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, StackError
from dfdnet_core.optics import LensOptics
from dfdnet_core.stack import FocalStack
from dfdnet_core.stack_assembler import (
    DROP_REASONS,
    CompletedStack,
    FrameSample,
    LensStateSample,
    StackAssembler,
    StackAssemblerConfig,
    to_rgb8,
)
from dfdnet_core.sweep import SweepConfig, SweepPlanner

MS = 1_000_000
FOCI = [0.5, 0.75, 1.0, 1.5, 3.0]


def lens(t_ns: int, focus_m: float = 1.0, settled: bool = True, sweep: int = 0, index: int = 0,
         length: int = 5) -> LensStateSample:
    return LensStateSample(t_ns, focus_m, 1.0 / focus_m if focus_m else math.inf, settled, sweep, index, length)


def frame(t_ns: int, value: int = 0, size: tuple[int, int] = (4, 6), encoding: str = "rgb8",
          **kw: Any) -> FrameSample:
    image = np.full((*size, 3), value % 256, dtype=np.uint8)
    return FrameSample(t_ns, image, encoding, "cam", **kw)


def check_invariants(asm: StackAssembler) -> None:
    s = asm.stats()
    assert s.frames_in == s.frames_used + sum(s.frame_drops.values()) + s.frames_held
    assert s.lens_states_in == s.lens_states_kept + sum(s.lens_state_drops.values())
    assert sum(asm.drops.values()) == sum(s.frame_drops.values()) + sum(s.lens_state_drops.values())
    assert set(asm.drops) <= set(DROP_REASONS)
    assert asm.drops["internal_error"] == 0


@dataclass
class Event:
    t_arrival_ns: int
    item: LensStateSample | FrameSample


def simulate(n_sweeps: int, n_focus: int = 5, settle_ms: float = 10.0, fps: float = 30.0,
             frames_per_step: int = 2, phase_ms: float = 5.0, camera_latency_ms: float = 0.0) -> list[Event]:
    """A ping-pong controller that steps every `frames_per_step` frame periods and a free-running camera.

    For a step that moves the lens, the controller publishes settled=False at the step start and settled=True
    `settle_ms` later; for a step that stays (the ping-pong turn) it publishes only settled=True at the step start.
    After the last step it publishes one more move, so every frame can be confirmed.
    """
    planner = SweepPlanner(SweepConfig(near_m=0.5, far_m=3.0, n_focus=n_focus, settle_time_s=settle_ms / 1e3))
    period_ns = round(1e9 / fps)
    step_ns = frames_per_step * period_ns
    events: list[Event] = []
    t = 0
    for _ in range(n_sweeps * n_focus):
        step = planner.next_step()
        if step.needs_move:
            events.append(Event(t, LensStateSample(t, step.focus_m, 1 / step.focus_m, False, step.sweep_id,
                                                   step.index, step.length)))
            settled_ns = t + round(settle_ms * MS)
        else:
            settled_ns = t
        events.append(Event(settled_ns, LensStateSample(settled_ns, step.focus_m, 1 / step.focus_m, True,
                                                        step.sweep_id, step.index, step.length)))
        t += step_ns
    events.append(Event(t, LensStateSample(t, 1.0, 1.0, False, 10**6, 0, n_focus)))
    k = 0
    while (stamp := round(phase_ms * MS) + k * period_ns) < t:
        events.append(Event(stamp + round(camera_latency_ms * MS), frame(stamp, k)))
        k += 1
    events.sort(key=lambda e: (e.t_arrival_ns, isinstance(e.item, FrameSample)))
    return events


def run(asm: StackAssembler, events: list[Event]) -> list[CompletedStack]:
    out: list[CompletedStack] = []
    for e in events:
        if isinstance(e.item, FrameSample):
            out += asm.add_frame(e.item)
        else:
            out += asm.add_lens_state(e.item)
    check_invariants(asm)
    return out


# ----------------------------------------------------------------------------------------------- pairing
def test_pingpong_sweeps_pair_into_exact_stacks() -> None:
    asm = StackAssembler()
    order = [0, 1, 2, 3, 4, 4, 3, 2, 1, 0]  # sweep 0 ascending, sweep 1 descending
    stacks: list[CompletedStack] = []
    t = 0
    for step, i in enumerate(order):
        sweep, index = divmod(step, 5)
        stacks += asm.add_lens_state(lens(t, FOCI[i], False, sweep, index))
        stacks += asm.add_lens_state(lens(t + 10 * MS, FOCI[i], True, sweep, index))
        stacks += asm.add_frame(frame(t + 5 * MS, 200))  # lens still moving
        stacks += asm.add_frame(frame(t + 20 * MS, 10 * step + 1))
        t += 50 * MS
    stacks += asm.add_lens_state(lens(t, 1.0, False, 2, 0))  # confirms the last frame
    assert len(stacks) == 2
    for sweep, stack in enumerate(stacks):
        assert stack.sweep_id == sweep
        np.testing.assert_array_equal(stack.focus_distances_m, FOCI)
        np.testing.assert_allclose(stack.powers_diopt, 1 / np.array(FOCI))
        assert stack.images.shape == (5, 4, 6, 3) and stack.images.dtype == np.uint8
        steps = [5 * sweep + (i if sweep == 0 else 4 - i) for i in range(5)]  # step that visited focus i
        assert [int(stack.images[i, 0, 0, 0]) for i in range(5)] == [10 * s + 1 for s in steps]
        assert stack.stamps_ns == tuple(s * 50 * MS + 20 * MS for s in steps)
        assert stack.stamp_ns == max(stack.stamps_ns) and stack.frame_id == "cam" and not stack.rolling
    assert asm.drops == {"lens_moving": 10}
    s = asm.stats()
    assert (s.frames_in, s.frames_used, s.frames_held, s.stacks_out) == (20, 10, 0, 2)
    check_invariants(asm)


def test_frame_is_held_until_the_next_lens_state_confirms_it() -> None:
    asm = StackAssembler()
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))
    assert asm.add_frame(frame(5 * MS)) == []
    assert asm.stats().frames_held == 1
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))  # a duplicate confirms nothing
    assert asm.stats().frames_held == 1 and asm.stats().frame_drops == {}
    asm.add_lens_state(lens(10 * MS, 2.0, False, 0, 1, 2))  # the move began after the frame: frame paired
    assert asm.stats().frames_held == 1 and asm.stats().frame_drops == {}
    asm.add_lens_state(lens(20 * MS, 2.0, True, 0, 1, 2))
    asm.add_frame(frame(30 * MS))
    out = asm.add_lens_state(lens(40 * MS, 1.0, False, 1, 0, 2))
    assert len(out) == 1 and out[0].stamps_ns == (5 * MS, 30 * MS)
    check_invariants(asm)


def test_frame_that_began_after_a_late_arriving_move_is_dropped() -> None:
    asm = StackAssembler()
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))
    asm.add_frame(frame(15 * MS))  # looks settled ...
    asm.add_lens_state(lens(10 * MS, 2.0, False, 0, 1, 2))  # ... but the move command was at 10 ms
    assert asm.drops == {} and asm.stats().frames_held == 1  # still undecided: the lens state at 15 ms is unknown
    asm.add_lens_state(lens(20 * MS, 2.0, True, 0, 1, 2))
    assert asm.drops == {"lens_moving": 1}
    check_invariants(asm)


def test_without_confirmation_frames_pair_at_once() -> None:
    asm = StackAssembler(StackAssemblerConfig(confirm_with_next_state=False))
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))
    asm.add_frame(frame(5 * MS))
    asm.add_lens_state(lens(10 * MS, 2.0, True, 0, 1, 2))
    out = asm.add_frame(frame(15 * MS))
    assert len(out) == 1 and out[0].stamps_ns == (5 * MS, 15 * MS)


def test_stamp_tolerance_guards_both_ends_of_the_settled_window() -> None:
    asm = StackAssembler(StackAssemblerConfig(stamp_tolerance_s=0.002))
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))
    for t_ms in (1, 2, 5, 8, 9):  # settled window [0, 10) ms, trusted [2, 8) ms
        asm.add_frame(frame(t_ms * MS))
    asm.add_lens_state(lens(10 * MS, 2.0, False, 0, 1, 2))
    assert asm.drops == {"lens_moving": 3, "superseded": 1}
    assert asm.stats().frames_held == 1
    check_invariants(asm)


def test_newest_frame_per_index_is_kept() -> None:
    asm = StackAssembler()
    asm.add_lens_state(lens(0, 2.0, True, 0, 0, 2))
    asm.add_frame(frame(1 * MS, 1))
    asm.add_frame(frame(2 * MS, 2))
    asm.add_lens_state(lens(3 * MS, 1.0, True, 0, 1, 2))
    asm.add_frame(frame(4 * MS, 3))
    (stack,) = asm.add_lens_state(lens(5 * MS, 1.0, False, 1, 0, 2))
    np.testing.assert_array_equal(stack.focus_distances_m, [1.0, 2.0])  # ascending, not driving order
    assert [int(v) for v in stack.images[:, 0, 0, 0]] == [3, 2]
    assert asm.drops == {"superseded": 1}


# ----------------------------------------------------------------------------------------------- drop reasons
def test_each_simple_drop_reason() -> None:
    asm = StackAssembler(StackAssemblerConfig(require_intrinsics=True))
    intr = CameraIntrinsics(6, 4, 5.0, 5.0, 2.5, 1.5)
    assert asm.add_frame(frame(1 * MS, intrinsics=intr)) == []
    assert asm.drops == {"no_lens_state": 1}
    asm.add_lens_state(lens(2 * MS, 1.0, True, 0, 0, 2))
    cases: list[tuple[FrameSample, str]] = [
        (frame(3 * MS), "no_camera_info"),
        (frame(4 * MS, intrinsics=CameraIntrinsics(8, 4, 5.0, 5.0, 2.5, 1.5)), "camera_info_mismatch"),
        (frame(5 * MS, encoding="yuv422", intrinsics=intr), "encoding"),
        (FrameSample(6 * MS, np.zeros((4, 6, 3), np.uint16), "rgb8", "cam", intr), "bad_image"),
        (FrameSample(7 * MS, np.zeros((4, 6, 3), np.uint8), "rgb8", 7, intr), "bad_frame_id"),  # type: ignore[arg-type]
        (FrameSample(8 * MS, np.zeros((4, 6, 3), np.uint8), "rgb8", "c", intr, "f/2"), "bad_optics"),  # type: ignore[arg-type]
        (frame(-1, intrinsics=intr), "bad_stamp"),
        (frame(2.5e7, intrinsics=intr), "bad_stamp"),  # type: ignore[arg-type]
        (frame(8 * MS, intrinsics=intr), "duplicate"),
        (frame(7 * MS, intrinsics=intr), "out_of_order"),
    ]
    for sample, reason in cases:
        before = asm.drops[reason]
        assert asm.add_frame(sample) == []
        assert asm.drops[reason] == before + 1, reason
    check_invariants(asm)


@pytest.mark.parametrize(
    ("state", "reason"),
    [
        (lens(1 * MS, math.nan), "bad_focus"),
        (lens(1 * MS, math.inf), "bad_focus"),
        (lens(1 * MS, -1.0), "bad_focus"),
        (lens(1 * MS, 1.0, length=1), "stack_too_short"),
        (lens(1 * MS, 1.0, length=65), "stack_too_long"),
        (lens(1 * MS, 1.0, index=5, length=5), "bad_index"),
        (lens(1 * MS, 1.0, sweep=-1), "bad_index"),
    ],
)
def test_bad_settled_state_is_counted_and_its_frames_dropped(state: LensStateSample, reason: str) -> None:
    asm = StackAssembler()
    asm.add_lens_state(state)
    asm.add_frame(frame(2 * MS))
    asm.add_lens_state(lens(3 * MS, 1.0, False))
    assert asm.lens_state_drops == {reason: 1}
    assert asm.frame_drops == {reason: 1}
    check_invariants(asm)


def test_lens_state_duplicate_out_of_order_and_bad_stamp() -> None:
    asm = StackAssembler()
    asm.add_lens_state(lens(5 * MS))
    asm.add_lens_state(lens(5 * MS))
    asm.add_lens_state(lens(4 * MS))
    asm.add_lens_state(lens(2**63))
    assert asm.lens_state_drops == {"duplicate": 1, "out_of_order": 1, "bad_stamp": 1}
    check_invariants(asm)


@pytest.mark.parametrize("change", ["size_mismatch", "encoding"])
def test_size_or_encoding_change_restarts_the_sweep(change: str) -> None:
    asm = StackAssembler()
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 3))
    asm.add_frame(frame(1 * MS, 1))
    asm.add_lens_state(lens(2 * MS, 2.0, True, 0, 1, 3))
    asm.add_frame(frame(3 * MS, 2))
    asm.add_lens_state(lens(4 * MS, 3.0, True, 0, 2, 3))
    if change == "size_mismatch":
        asm.add_frame(frame(5 * MS, 3, size=(5, 6)))
    else:
        asm.add_frame(FrameSample(5 * MS, np.zeros((4, 6, 3), np.uint8), "bgr8", "cam"))
    out = asm.add_lens_state(lens(6 * MS, 3.0, False, 1, 0, 3))
    assert out == []
    assert asm.drops == {change: 2}
    assert asm.stats().frames_held == 1
    check_invariants(asm)


def test_incomplete_sweep_is_dropped_when_the_next_begins() -> None:
    asm = StackAssembler()
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))
    asm.add_frame(frame(1 * MS))
    asm.add_lens_state(lens(2 * MS, 2.0, False, 0, 1, 2))
    asm.add_frame(frame(3 * MS))  # lens moving: index 1 of sweep 0 never gets a frame
    asm.add_lens_state(lens(4 * MS, 1.0, True, 1, 0, 2))
    asm.add_frame(frame(5 * MS))
    asm.add_lens_state(lens(6 * MS, 2.0, False, 1, 1, 2))
    assert asm.drops == {"lens_moving": 1, "sweep_incomplete": 1}
    check_invariants(asm)


def test_late_frame_of_an_emitted_sweep_is_dropped() -> None:
    asm = StackAssembler(StackAssemblerConfig(confirm_with_next_state=False))
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))
    asm.add_frame(frame(1 * MS))
    asm.add_lens_state(lens(2 * MS, 2.0, True, 0, 1, 2))
    assert len(asm.add_frame(frame(3 * MS))) == 1
    assert asm.add_frame(frame(4 * MS)) == []
    assert asm.drops == {"sweep_done": 1}


def test_sweep_timeout_discards_a_stalled_sweep() -> None:
    asm = StackAssembler(StackAssemblerConfig(sweep_timeout_s=0.5))
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 3))
    asm.add_frame(frame(1 * MS))
    asm.add_lens_state(lens(2 * MS, 2.0, True, 0, 1, 3))
    asm.add_frame(frame(3 * MS))
    asm.add_lens_state(lens(4 * MS, 3.0, False, 0, 2, 3))
    assert asm.stats().frames_held == 2
    asm.add_lens_state(lens(400 * MS, 3.0, True, 0, 2, 3))
    assert asm.drops == {}
    asm.add_lens_state(lens(510 * MS, 3.0, False, 1, 0, 3))  # 509 ms after the oldest held frame
    assert asm.drops == {"sweep_timeout": 2}
    check_invariants(asm)


def test_clock_jump_resets_and_assembly_resumes() -> None:
    asm = StackAssembler(StackAssemblerConfig(clock_jump_s=0.1))
    run(asm, simulate(2)[:12])  # part of the first sweep held (about 0.2 s)
    held = asm.stats().frames_held
    assert held > 0
    stacks = run(asm, simulate(2))  # the bag starts again at t = 0
    assert asm.stats().clock_jumps == 1
    assert asm.drops["clock_jump"] == held
    assert len(stacks) == 2


def test_pending_frames_are_bounded() -> None:
    asm = StackAssembler(StackAssemblerConfig(max_pending_frames=3))
    asm.add_lens_state(lens(0))
    for k in range(10):
        asm.add_frame(frame((k + 1) * MS))
    assert asm.drops == {"pending_overflow": 7} and asm.stats().frames_held == 3


# ----------------------------------------------------------------------------------------------- encodings
def test_to_rgb8_converts_supported_encodings() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    bgr = rgb[:, :, ::-1].copy()
    np.testing.assert_array_equal(to_rgb8(bgr, "bgr8")[0], rgb)
    np.testing.assert_array_equal(to_rgb8(np.dstack([bgr, rgb[:, :, :1]]), "bgra8")[0], rgb)
    np.testing.assert_array_equal(to_rgb8(np.dstack([rgb, rgb[:, :, :1]]), "rgba8")[0], rgb)
    mono = rgb[:, :, 0]
    np.testing.assert_array_equal(to_rgb8(mono, "mono8")[0], np.dstack([mono] * 3))
    np.testing.assert_array_equal(to_rgb8(mono[:, :, None], "mono8")[0], np.dstack([mono] * 3))
    big = np.random.default_rng(0).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    for view in (big[:, ::2], big[::-1], big[:, :, ::-1]):  # strided and negative-stride views
        out, _ = to_rgb8(view, "bgr8")
        np.testing.assert_array_equal(out, view[:, :, ::-1])
        assert out is not None and out.flags.c_contiguous
    assert to_rgb8(rgb, "16UC1") == (None, "encoding")
    assert to_rgb8(np.zeros((0, 3, 3), np.uint8), "rgb8") == (None, "bad_image")
    assert to_rgb8(rgb, "mono8") == (None, "bad_image")


# ----------------------------------------------------------------------------------------------- rolling
def test_rolling_and_per_sweep_emission_counts_at_30_fps() -> None:
    """5 focus distances, 10 ms settle, 30 fps camera, one lens step every 2 frame periods (66.7 ms).

    Frames fall at +5 ms and +38.3 ms of each step. A step that moves the lens settles at +10 ms, so its +5 ms frame
    is dropped ("lens_moving") and its +38.3 ms frame kept. The ping-pong turn (same distance twice, no move) keeps
    both frames; the older one is superseded. Per-sweep mode emits once per sweep; rolling mode emits once per step
    from the end of the first sweep on (both frames of a turn step are confirmed by the same lens state).
    """
    n_sweeps, n_focus = 6, 5
    steps = n_sweeps * n_focus
    turns = n_sweeps - 1
    events = simulate(n_sweeps, n_focus)
    n_frames = sum(isinstance(e.item, FrameSample) for e in events)
    assert n_frames == 2 * steps
    expected_drops = {"lens_moving": steps - turns, "superseded": turns}

    per_sweep = StackAssembler()
    stacks = run(per_sweep, events)
    assert len(stacks) == n_sweeps
    assert per_sweep.drops == expected_drops
    assert [s.sweep_id for s in stacks] == list(range(n_sweeps))

    rolling = StackAssembler(StackAssemblerConfig(rolling=True))
    rstacks = run(rolling, events)
    assert len(rstacks) == steps - (n_focus - 1)
    assert rolling.drops == expected_drops
    assert rolling.stats().frames_used == steps
    for s in rstacks:  # every rolling stack holds all five distances, ascending
        assert len(s.focus_distances_m) == n_focus and np.all(np.diff(s.focus_distances_m) > 0)
        assert s.rolling
    # a rolling stack emitted at the end of a sweep equals that sweep's per-sweep stack
    np.testing.assert_array_equal(rstacks[0].images, stacks[0].images)
    np.testing.assert_array_equal(rstacks[n_focus].images, stacks[1].images)


def test_camera_latency_does_not_change_the_result() -> None:
    base = run(StackAssembler(), simulate(4))
    late = run(StackAssembler(), simulate(4, camera_latency_ms=45.0))
    assert len(base) == len(late) == 4
    for a, b in zip(base, late, strict=True):
        np.testing.assert_array_equal(a.images, b.images)
        assert a.stamps_ns == b.stamps_ns


def test_completed_stack_builds_a_focal_stack() -> None:
    intr = CameraIntrinsics(6, 4, 5.0, 5.0, 2.5, 1.5)
    optics = LensOptics(0.016, 2.0, 5e-6)
    asm = StackAssembler()
    asm.add_lens_state(lens(0, 1.0, True, 3, 0, 2))
    asm.add_frame(frame(1 * MS, intrinsics=intr, optics=optics))
    asm.add_lens_state(lens(2 * MS, 2.0, True, 3, 1, 2))
    asm.add_frame(frame(3 * MS, intrinsics=intr, optics=optics))
    (done,) = asm.add_lens_state(lens(4 * MS, 2.0, False, 4, 0, 2))
    fs = done.to_focal_stack()
    assert isinstance(fs, FocalStack) and fs.sweep_id == 3 and fs.stamp_ns == 3 * MS and fs.size == 2
    bare = CompletedStack(done.images, done.focus_distances_m, done.powers_diopt, done.stamps_ns, 1, 0, "c",
                          None, None, False)
    with pytest.raises(StackError, match="needs intrinsics and optics"):
        bare.to_focal_stack()
    assert bare.to_focal_stack(intr, optics).frame_id == "c"


# ----------------------------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"rolling": 1}, "rolling must be a bool, got 1"),
        ({"sweep_timeout_s": 0.0}, r"sweep_timeout_s must be a number in \[0.001, 3600.0\] s, got 0.0"),
        ({"stamp_tolerance_s": -0.1}, "stamp_tolerance_s .* got -0.1"),
        ({"clock_jump_s": math.nan}, "clock_jump_s .* got nan"),
        ({"max_pending_frames": 0}, r"max_pending_frames must be an int in \[1, 1024\], got 0"),
        ({"max_lens_history": 1.5}, "max_lens_history .* got 1.5"),
        ({"max_stack_size": 1}, "max_stack_size .* got 1"),
    ],
)
def test_config_rejects_bad_values(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        StackAssemblerConfig(**kwargs)


def test_assembler_rejects_a_non_config() -> None:
    with pytest.raises(ConfigError, match="must be a StackAssemblerConfig, got 'rolling'"):
        StackAssembler("rolling")  # type: ignore[arg-type]


# ----------------------------------------------------------------------------------------------- fuzz and soak
def _random_stamp(rng: random.Random, last: int) -> Any:
    pick = rng.random()
    if pick < 0.70:
        return last + rng.randint(1, 20) * MS
    return rng.choice([last, last - MS, last - 5 * 10**9, -1, 2**63, 2**70, 1.5e9, None, "0", True,
                       np.int64(last + MS), np.uint64(last + 2 * MS), 0])


def _random_image(rng: random.Random) -> Any:
    pick = rng.random()
    if pick < 0.6:
        return np.full((rng.choice([4, 4, 4, 5]), 6, 3), rng.randrange(256), dtype=np.uint8)
    shape = tuple(rng.randint(0, 5) for _ in range(rng.randint(0, 4)))
    dtype = rng.choice([np.uint8, np.uint16, np.float32, np.bool_, np.int8, object])
    return rng.choice([np.zeros(shape, dtype=dtype), None, [[1, 2, 3]], "image", np.float64("nan"),
                       np.zeros((4, 6), np.uint8), np.zeros((4, 6, 4), np.uint8), np.zeros((4, 6, 1), np.uint8)])


def _random_frame(rng: random.Random, stamp: Any) -> Any:
    if rng.random() < 0.02:
        return rng.choice([None, 42, "frame", object()])
    encoding = rng.choice(["rgb8"] * 6 + ["bgr8", "mono8", "rgba8", "bgra8", "yuv422", "16UC1", "", None, 3])
    intr = rng.choice([None, None, CameraIntrinsics(6, 4, 5.0, 5.0, 2.5, 1.5),
                       CameraIntrinsics(7, 4, 5.0, 5.0, 2.5, 1.5), "K"])
    optics = rng.choice([None, LensOptics(0.016, 2.0, 5e-6), 2.8])
    frame_id = rng.choice(["cam"] * 8 + [None, 5])
    return FrameSample(stamp, _random_image(rng), encoding, frame_id, intr, optics)  # type: ignore[arg-type]


def _random_lens(rng: random.Random, stamp: Any) -> Any:
    if rng.random() < 0.02:
        return rng.choice([None, 42, "lens", object()])
    length = rng.choice([3] * 10 + [0, 1, 2, -3, 100, 2**40, 3.0, None])
    return LensStateSample(
        stamp,
        rng.choice([0.5, 1.0, 2.0] * 5 + [math.nan, math.inf, -math.inf, 0.0, -1.0, None, "1", 1e-300, 1e300]),
        rng.choice([1.0, math.nan, None]),
        rng.choice([True, True, False, np.bool_(True), 1, None]),
        rng.choice([0, 0, 1, 2, -1, 2**70, 1.5]),
        rng.choice([0, 1, 2, 2, -1, 3, 99, 1.0, None]),
        length,
    )


@pytest.mark.parametrize("rolling", [False, True])
def test_fuzz_never_raises_and_counts_every_frame(rolling: bool) -> None:
    """3,000 inputs: well-formed sweeps (3 distances) interleaved with random malformed and adversarial ones."""
    rng = random.Random(1234 + rolling)
    asm = StackAssembler(StackAssemblerConfig(rolling=rolling, sweep_timeout_s=0.5))
    last = 10**9
    n_stacks = 0
    step = 0
    for _ in range(3000):
        if rng.random() < 0.6:  # the next input of a clean 3-distance sweep: settled state, then a frame
            last += rng.randint(1, 20) * MS
            sweep, index = divmod(step // 2, 3)
            if step % 2 == 0:
                out = asm.add_lens_state(lens(last, [0.5, 1.0, 2.0][index], True, sweep, index, 3))
            else:
                out = asm.add_frame(frame(last, step))
            step += 1
        else:
            stamp = _random_stamp(rng, last)
            if isinstance(stamp, int) and not isinstance(stamp, bool) and 0 <= stamp < 2**62:
                last = max(stamp, last) if rng.random() < 0.98 else stamp  # sometimes the clock jumps back
            if rng.random() < 0.45:
                out = asm.add_lens_state(_random_lens(rng, stamp))
            else:
                out = asm.add_frame(_random_frame(rng, stamp))
        for s in out:
            n = s.images.shape[0]
            assert s.images.ndim == 4 and s.images.shape[3] == 3 and s.images.dtype == np.uint8 and n >= 2
            assert s.focus_distances_m.shape == (n,) and np.all(np.isfinite(s.focus_distances_m))
            assert np.all(np.diff(s.focus_distances_m) >= 0) and len(s.stamps_ns) == n
        n_stacks += len(out)
        check_invariants(asm)
    stats = asm.stats()
    assert stats.stacks_out == n_stacks > 0  # the fuzz also reaches the emitting paths
    assert stats.frames_in > 1000 and stats.lens_states_in > 1000
    assert stats.frames_held <= asm.config.max_pending_frames + asm.config.max_stack_size
    assert len(asm.frame_drops) >= 12 and len(asm.lens_state_drops) >= 6  # a broad spread of reasons


def _soak(asm: StackAssembler, n_frames: int, t0_ns: int) -> int:
    """Feed a 30 fps camera and a 5-distance ping-pong sweep (one step per 2 frames); returns the stacks out."""
    planner = SweepPlanner(SweepConfig(near_m=0.5, far_m=3.0, n_focus=5))
    period = 33_333_333
    out = 0
    image = np.zeros((8, 8, 3), np.uint8)
    for k in range(n_frames):
        t = t0_ns + k * period
        if k % 2 == 0:
            step = planner.next_step()
            out += len(asm.add_lens_state(LensStateSample(t, step.focus_m, step.power_diopt, False,
                                                          step.sweep_id, step.index, step.length)))
            out += len(asm.add_lens_state(LensStateSample(t + 10 * MS, step.focus_m, step.power_diopt, True,
                                                          step.sweep_id, step.index, step.length)))
        out += len(asm.add_frame(FrameSample(t + 15 * MS, image.copy(), "rgb8", "cam")))
    return out


@pytest.mark.parametrize("rolling", [False, True])
def test_soak_memory_stays_bounded(rolling: bool) -> None:
    asm = StackAssembler(StackAssemblerConfig(rolling=rolling))
    tracemalloc.start()
    try:
        _soak(asm, 1000, 0)
        base, _ = tracemalloc.get_traced_memory()
        stacks = _soak(asm, 9000, 1000 * 33_333_333)
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert current - base < 10 * 2**20
    assert current - base < 256 * 2**10  # in fact far less: nothing grows with the number of frames
    stats = asm.stats()
    # 5,000 steps of 2 settled frames each (the older superseded); the last step is not yet confirmed
    assert stats.frames_in == 10_000 and stats.frames_held <= 4 + 2
    assert stats.frame_drops == {"superseded": 4999}
    assert stats.stacks_out == (999 if not rolling else 4999 - 4)
    assert stacks == stats.stacks_out - (99 if not rolling else 499 - 4)  # minus those of the first 1,000
    check_invariants(asm)


def test_reset_counts_held_frames_and_rejects_unknown_reasons() -> None:
    asm = StackAssembler()
    asm.add_lens_state(lens(0, 1.0, True, 0, 0, 2))
    asm.add_frame(frame(1 * MS))
    asm.add_lens_state(lens(2 * MS, 2.0, True, 0, 1, 2))
    asm.add_frame(frame(3 * MS))  # pending
    asm.reset("sweep_timeout")
    assert asm.drops == {"sweep_timeout": 2} and asm.stats().frames_held == 0
    assert asm.add_frame(frame(0)) == [] and asm.drops["no_lens_state"] == 1  # stamps start afresh
    with pytest.raises(ConfigError, match="reset reason must be one of DROP_REASONS, got 'because'"):
        asm.reset("because")
    check_invariants(asm)
