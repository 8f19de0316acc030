"""Pairs camera frames with lens states into focal stacks: the logic of the stack_buffer node, without ROS.

Pairing: a frame (stamp = start of exposure) counts for lens state ``S`` when ``S`` is settled,
``S.stamp_ns + tol <= frame.stamp_ns`` and ``frame.stamp_ns + tol < `` the stamp of the lens state after ``S`` (the
next move command or the next settled state), ``tol`` being ``stamp_tolerance_s`` (set it to the camera's stamp
latency when the driver stamps frames at the end of exposure or on arrival). With ``confirm_with_next_state`` (the
default) a frame newer than the newest lens state waits for the next lens state, since only then is it known that
the lens did not move during it: one dwell of latency, immune to the two topics arriving out of step.

Emission: per sweep (default), the newest frame of each index of sweep ``sweep_id`` is kept and the stack is
emitted once, when every index has one. Rolling (``rolling=True``): a window holds the newest frame at each of the
last ``length`` distinct focus distances; once full, a stack is emitted for every batch of newly paired frames
(one batch = the frames confirmed by one lens state, usually one frame). Images are ascending in focus distance.

Hygiene: no stack spans more than ``sweep_timeout_s`` (older held frames are discarded); a stream that goes back
in time by more than ``clock_jump_s`` (bag loop, sim time reset) resets everything; duplicate and out-of-order
stamps are dropped per stream. The assembler is pure and single-threaded (no ROS, clocks or threads; time comes
only from stamps, int ns) and not thread-safe. Bad input never raises: it is counted in
:attr:`StackAssembler.drops` under one of :data:`DROP_REASONS` and the call returns ``[]``. Memory is bounded by
the config: one sweep (or window) of at most ``max_stack_size`` frames, ``max_pending_frames`` unconfirmed frames,
``max_lens_history`` lens states.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.errors import ConfigError, StackError
from dfdnet_core.optics import LensOptics
from dfdnet_core.stack import FocalStack

SUPPORTED_ENCODINGS: tuple[str, ...] = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
"""Image encodings accepted by :meth:`StackAssembler.add_frame` (ROS names); all are converted to RGB uint8."""

DROP_REASONS: dict[str, str] = {
    "bad_stamp": "stamp is not an int in [0, 2**63) ns",
    "duplicate": "same stamp as the previous input of that stream",
    "out_of_order": "older than the previous input of that stream (by less than clock_jump_s)",
    "clock_jump": "held frame discarded because a stream jumped back in time by more than clock_jump_s",
    "no_lens_state": "frame older than every known lens state",
    "lens_moving": "frame exposure began while the lens moved (or within stamp_tolerance_s of a move)",
    "bad_focus": "settled lens state with a NaN, infinite or non-positive focus distance (and its frames)",
    "stack_too_short": "settled lens state of a sweep shorter than 2 (and its frames)",
    "stack_too_long": "settled lens state of a sweep longer than max_stack_size (and its frames)",
    "bad_index": "settled lens state whose index or sweep_id is not an int in range (and its frames)",
    "encoding": "unsupported encoding, or held frames discarded because the encoding changed",
    "bad_image": "image is not a non-empty uint8 array of the shape its encoding needs",
    "size_mismatch": "held frames discarded because the image size changed",
    "no_camera_info": "intrinsics are required and the frame has none",
    "camera_info_mismatch": "intrinsics are not CameraIntrinsics of the image's size",
    "bad_optics": "optics is neither None nor LensOptics",
    "bad_frame_id": "frame_id is not a str",
    "superseded": "a newer frame took this frame's focus slot before it was used",
    "sweep_incomplete": "a new sweep began before this frame's sweep was complete (per-sweep mode)",
    "sweep_done": "frame for a sweep whose stack was already emitted (per-sweep mode)",
    "sweep_timeout": "held longer than sweep_timeout_s without completing a stack",
    "pending_overflow": "more than max_pending_frames frames waited for a lens state",
    "internal_error": "unexpected exception inside the assembler (a bug: please report)",
}
"""Every reason :attr:`StackAssembler.drops` can count, with its meaning."""

_MAX_STAMP_NS = 2**63


@dataclass(frozen=True)
class LensStateSample:
    """One lens state, as published by the focus sweep controller. Not validated here (the assembler does).

    Attributes:
        stamp_ns: when the lens settled (``settled``) or was commanded to move (not ``settled``), int ns.
        focus_m: focus distance in metres.
        power_diopt: optical power in dioptres (1 / focus_m).
        settled: True once the lens has settled at ``focus_m``.
        sweep_id: counter of the sweep.
        index: position of this focus distance in the sweep (0-based, in driving order).
        length: number of focus distances in the sweep.
    """

    stamp_ns: int
    focus_m: float
    power_diopt: float
    settled: bool
    sweep_id: int
    index: int
    length: int


@dataclass(frozen=True)
class FrameSample:
    """One camera frame. Not validated here (the assembler does); the assembler keeps a reference to ``image``.

    Attributes:
        stamp_ns: start of exposure, int ns.
        image: (H, W, 3) uint8 for rgb8/bgr8, (H, W, 4) for rgba8/bgra8, (H, W) or (H, W, 1) for mono8.
        encoding: one of :data:`SUPPORTED_ENCODINGS`.
        frame_id: optical frame of the camera.
        intrinsics: pinhole intrinsics of this image, or None when no camera info is known.
        optics: lens optics, or None when unknown.
    """

    stamp_ns: int
    image: Any
    encoding: str = "rgb8"
    frame_id: str = ""
    intrinsics: CameraIntrinsics | None = None
    optics: LensOptics | None = None


@dataclass(frozen=True)
class CompletedStack:
    """A complete focal stack, images in ascending focus distance.

    Attributes:
        images: (N, H, W, 3) uint8 RGB, nearest focus first.
        focus_distances_m: (N,) float64 focus distances in metres, ascending.
        powers_diopt: (N,) float64 optical powers in dioptres, same order.
        stamps_ns: exposure-start stamp of each image, int ns, same order.
        stamp_ns: the newest of ``stamps_ns``.
        sweep_id: sweep of the newest image.
        frame_id: optical frame of the earliest image.
        intrinsics: intrinsics of the earliest image, or None.
        optics: optics of the earliest image, or None.
        rolling: True when the images may come from more than one sweep (rolling mode).
    """

    images: npt.NDArray[np.uint8]
    focus_distances_m: npt.NDArray[np.float64]
    powers_diopt: npt.NDArray[np.float64]
    stamps_ns: tuple[int, ...]
    stamp_ns: int
    sweep_id: int
    frame_id: str
    intrinsics: CameraIntrinsics | None
    optics: LensOptics | None
    rolling: bool

    def to_focal_stack(
        self, intrinsics: CameraIntrinsics | None = None, optics: LensOptics | None = None
    ) -> FocalStack:
        """The stack as a :class:`FocalStack`; ``intrinsics``/``optics`` override the frames' own.

        Raises:
            StackError: no intrinsics or no optics are known, or they do not fit the images.
        """
        intr = intrinsics if intrinsics is not None else self.intrinsics
        opt = optics if optics is not None else self.optics
        if intr is None or opt is None:
            raise StackError(
                f"stack of sweep {self.sweep_id} at stamp {self.stamp_ns} ns needs intrinsics and optics, "
                f"got intrinsics={intr!r}, optics={opt!r}"
            )
        return FocalStack(
            self.images, self.focus_distances_m, intr, opt, self.stamp_ns, self.frame_id, self.sweep_id
        )


@dataclass(frozen=True)
class StackAssemblerConfig:
    """Parameters of :class:`StackAssembler` (and of the stack_buffer node, 1:1).

    Attributes:
        rolling: after the first full set of focus distances, emit a stack for every newly paired frame (newest
            frame at each focus distance) instead of once per sweep.
        sweep_timeout_s: held frames older than this (s, measured in input stamps) are discarded.
        stamp_tolerance_s: guard (s) after a settle and before a move within which frames are not trusted.
        clock_jump_s: a stream going back in time by more than this (s) resets the assembler.
        confirm_with_next_state: hold frames newer than the newest lens state until the next one arrives.
        require_intrinsics: drop frames without intrinsics ("no_camera_info").
        max_pending_frames: unconfirmed frames held at most.
        max_lens_history: lens states remembered for pairing late frames.
        max_stack_size: longest sweep accepted.
    """

    rolling: bool = field(
        default=False,
        metadata={"description": "emit a stack for every new paired frame after the first full set (else per sweep)"},
    )
    sweep_timeout_s: float = field(
        default=1.0,
        metadata={"description": "discard held frames older than this, in stamp time (seconds); > one sweep",
                  "range": (0.001, 3600.0, 0.0)},
    )
    stamp_tolerance_s: float = field(
        default=0.0,
        metadata={"description": "guard after a settle and before a move where frames are not trusted (seconds)",
                  "range": (0.0, 1.0, 0.0)},
    )
    clock_jump_s: float = field(
        default=1.0,
        metadata={"description": "a stream going back in time by more than this resets the buffer (seconds)",
                  "range": (0.001, 3600.0, 0.0)},
    )
    confirm_with_next_state: bool = field(
        default=True,
        metadata={"description": "hold frames newer than the newest lens state until the next one arrives"},
    )
    require_intrinsics: bool = field(
        default=False, metadata={"description": "drop frames without camera info (reason no_camera_info)"}
    )
    max_pending_frames: int = field(
        default=8, metadata={"description": "unconfirmed frames held at most", "range": (1, 1024, 1)}
    )
    max_lens_history: int = field(
        default=64, metadata={"description": "lens states remembered to pair late frames", "range": (2, 4096, 1)}
    )
    max_stack_size: int = field(
        default=64, metadata={"description": "longest sweep accepted (focus distances)", "range": (2, 1024, 1)}
    )

    def __post_init__(self) -> None:
        for name in ("rolling", "confirm_with_next_state", "require_intrinsics"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"stack assembler {name} must be a bool, got {getattr(self, name)!r}")
        for name, low, high in (
            ("sweep_timeout_s", 1e-3, 3600.0),
            ("stamp_tolerance_s", 0.0, 1.0),
            ("clock_jump_s", 1e-3, 3600.0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                raise ConfigError(f"stack assembler {name} must be a number in [{low}, {high}] s, got {value!r}")
        for name, low, high in (
            ("max_pending_frames", 1, 1024),
            ("max_lens_history", 2, 4096),
            ("max_stack_size", 2, 1024),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ConfigError(f"stack assembler {name} must be an int in [{low}, {high}], got {value!r}")


@dataclass(frozen=True)
class AssemblerStats:
    """Counters of a :class:`StackAssembler`.

    ``frames_in == frames_used + sum(frame_drops.values()) + frames_held`` and
    ``lens_states_in == lens_states_kept + sum(lens_state_drops.values())`` hold at all times.
    """

    frames_in: int
    frames_used: int
    frames_held: int
    stacks_out: int
    lens_states_in: int
    lens_states_kept: int
    clock_jumps: int
    frame_drops: dict[str, int]
    lens_state_drops: dict[str, int]


@dataclass(frozen=True)
class _LensRecord:
    stamp_ns: int
    reason: str  # "" when frames may pair with it, else the drop reason its frames get
    focus_m: float = math.nan
    power_diopt: float = math.nan
    sweep_id: int = -1
    index: int = -1
    length: int = 0


@dataclass(eq=False)
class _Held:
    stamp_ns: int
    image: npt.NDArray[np.uint8]
    encoding: str
    frame_id: str
    intrinsics: CameraIntrinsics | None
    optics: LensOptics | None
    lens: _LensRecord | None = None
    used: bool = False


@dataclass
class _Collection:
    """Frames of the current sweep (keyed by index) or of the rolling window (keyed by focus)."""

    key: tuple[int, int] | None = None  # (sweep_id, length) in per-sweep mode
    slots: dict[Any, _Held] = field(default_factory=dict)
    changed: bool = False


class StackAssembler:
    """Pairs frames with lens states and emits complete focal stacks. See the module docstring for the rules."""

    def __init__(self, config: StackAssemblerConfig | None = None) -> None:
        """Args: config: the parameters; the defaults when None.

        Raises:
            ConfigError: ``config`` is not a :class:`StackAssemblerConfig`.
        """
        if config is None:
            config = StackAssemblerConfig()
        if not isinstance(config, StackAssemblerConfig):
            raise ConfigError(f"config must be a StackAssemblerConfig, got {config!r}")
        self.config = config
        self._tol_ns = round(config.stamp_tolerance_s * 1e9)
        self._timeout_ns = round(config.sweep_timeout_s * 1e9)
        self._jump_ns = round(config.clock_jump_s * 1e9)
        self.drops: Counter[str] = Counter()
        self.frame_drops: Counter[str] = Counter()
        self.lens_state_drops: Counter[str] = Counter()
        self._frames_in = self._frames_used = self._stacks_out = 0
        self._lens_in = self._clock_jumps = 0
        self._history: deque[_LensRecord] = deque(maxlen=config.max_lens_history)
        self._pending: deque[_Held] = deque()
        self._coll = _Collection()
        self._done_key: tuple[int, int] | None = None
        self._last_frame_ns: int | None = None
        self._last_lens_ns: int | None = None

    # ----------------------------------------------------------------------------------------- public API
    def add_lens_state(self, state: LensStateSample) -> list[CompletedStack]:
        """Take one lens state; returns the stacks it completed (frames waiting for it may complete one)."""
        self._lens_in += 1
        try:
            return self._add_lens_state(state)
        except Exception:
            self._drop_lens("internal_error")
            return []

    def add_frame(self, frame: FrameSample) -> list[CompletedStack]:
        """Take one camera frame; returns the stacks it completed (usually none or one)."""
        self._frames_in += 1
        try:
            return self._add_frame(frame)
        except Exception:
            self._drop_frame("internal_error")
            return []

    def reset(self, reason: str = "clock_jump") -> None:
        """Forget all lens states and held frames (held unused frames are counted under ``reason``).

        Raises:
            ConfigError: ``reason`` is not one of :data:`DROP_REASONS`.
        """
        if reason not in DROP_REASONS:
            raise ConfigError(f"reset reason must be one of DROP_REASONS, got {reason!r}")
        self._discard(list(self._pending), reason)
        self._pending.clear()
        self._discard(list(self._coll.slots.values()), reason)
        self._coll = _Collection()
        self._history.clear()
        self._done_key = None
        self._last_frame_ns = self._last_lens_ns = None

    def stats(self) -> AssemblerStats:
        """Counters; see :class:`AssemblerStats` for the invariants."""
        held = len(self._pending) + sum(1 for h in self._coll.slots.values() if not h.used)
        return AssemblerStats(
            frames_in=self._frames_in,
            frames_used=self._frames_used,
            frames_held=held,
            stacks_out=self._stacks_out,
            lens_states_in=self._lens_in,
            lens_states_kept=self._lens_in - sum(self.lens_state_drops.values()),
            clock_jumps=self._clock_jumps,
            frame_drops=dict(self.frame_drops),
            lens_state_drops=dict(self.lens_state_drops),
        )

    # ----------------------------------------------------------------------------------------- lens states
    def _add_lens_state(self, state: LensStateSample) -> list[CompletedStack]:
        stamp = _valid_stamp(getattr(state, "stamp_ns", None))
        if stamp is None:
            self._drop_lens("bad_stamp")
            return []
        if self._last_lens_ns is not None and stamp < self._last_lens_ns - self._jump_ns:
            self._clock_jumps += 1
            self.reset("clock_jump")
        order = _order(stamp, self._last_lens_ns)
        if order:
            self._drop_lens(order)
            return []
        self._last_lens_ns = stamp
        self._expire(stamp)
        record = _lens_record(state, stamp, self.config.max_stack_size)
        if record.reason and record.reason != "lens_moving":
            self._drop_lens(record.reason)  # counted, but kept in the history: the lens did change state
        self._history.append(record)
        ready = [h for h in self._pending if h.stamp_ns < stamp]
        for _ in ready:
            self._pending.popleft()
        for held in ready:
            self._decide(held)
        return self._emit()

    # ----------------------------------------------------------------------------------------- frames
    def _add_frame(self, frame: FrameSample) -> list[CompletedStack]:
        stamp = _valid_stamp(getattr(frame, "stamp_ns", None))
        if stamp is None:
            self._drop_frame("bad_stamp")
            return []
        if self._last_frame_ns is not None and stamp < self._last_frame_ns - self._jump_ns:
            self._clock_jumps += 1
            self.reset("clock_jump")
        order = _order(stamp, self._last_frame_ns)
        if order:
            self._drop_frame(order)
            return []
        self._last_frame_ns = stamp
        self._expire(stamp)
        held, reason = self._check_frame(frame, stamp)
        if held is None:
            self._drop_frame(reason)
            return []
        if not self._history or stamp < self._history[0].stamp_ns:
            self._drop_frame("no_lens_state")
            return []
        if self.config.confirm_with_next_state and stamp >= self._history[-1].stamp_ns:
            self._pending.append(held)
            if len(self._pending) > self.config.max_pending_frames:
                self._pending.popleft()
                self._drop_frame("pending_overflow")
            return []
        self._decide(held)
        return self._emit()

    def _check_frame(self, frame: FrameSample, stamp: int) -> tuple[_Held | None, str]:
        encoding = getattr(frame, "encoding", None)
        rgb, reason = to_rgb8(getattr(frame, "image", None), encoding)
        if rgb is None:
            return None, reason
        frame_id = getattr(frame, "frame_id", None)
        if not isinstance(frame_id, str):
            return None, "bad_frame_id"
        intrinsics = getattr(frame, "intrinsics", None)
        if intrinsics is None:
            if self.config.require_intrinsics:
                return None, "no_camera_info"
        elif not isinstance(intrinsics, CameraIntrinsics) or (
            intrinsics.width_px,
            intrinsics.height_px,
        ) != (rgb.shape[1], rgb.shape[0]):
            return None, "camera_info_mismatch"
        optics = getattr(frame, "optics", None)
        if optics is not None and not isinstance(optics, LensOptics):
            return None, "bad_optics"
        return _Held(stamp, rgb, str(encoding), frame_id, intrinsics, optics), ""

    # ----------------------------------------------------------------------------------------- pairing
    def _decide(self, held: _Held) -> None:
        """Pair one frame (stamps in order) with the lens state in effect at its exposure start."""
        history = self._history
        i = len(history) - 1
        while i >= 0 and history[i].stamp_ns > held.stamp_ns:
            i -= 1
        if i < 0:
            self._drop_frame("no_lens_state")
            return
        lens = history[i]
        if lens.reason:
            self._drop_frame(lens.reason)
            return
        next_ns = history[i + 1].stamp_ns if i + 1 < len(history) else None
        if held.stamp_ns < lens.stamp_ns + self._tol_ns or (
            next_ns is not None and held.stamp_ns + self._tol_ns >= next_ns
        ):
            self._drop_frame("lens_moving")
            return
        held.lens = lens
        self._place(held, lens)

    def _place(self, held: _Held, lens: _LensRecord) -> None:
        coll = self._coll
        if not self.config.rolling:
            key = (lens.sweep_id, lens.length)
            if key == self._done_key:
                self._drop_frame("sweep_done")
                return
            if key != coll.key:
                self._discard(list(coll.slots.values()), "sweep_incomplete")
                coll.slots.clear()
                coll.key = key
        first = next(iter(coll.slots.values()), None)
        if first is not None and first.image.shape != held.image.shape:
            self._discard(list(coll.slots.values()), "size_mismatch")
            coll.slots.clear()
        elif first is not None and first.encoding != held.encoding:
            self._discard(list(coll.slots.values()), "encoding")
            coll.slots.clear()
        slot: Any = lens.index if not self.config.rolling else _focus_key(lens.power_diopt)
        old = coll.slots.pop(slot, None)
        if old is not None:
            self._discard([old], "superseded")
        coll.slots[slot] = held
        if self.config.rolling:  # window of the newest `length` distinct focus distances
            while len(coll.slots) > lens.length:
                oldest = min(coll.slots, key=lambda k: coll.slots[k].stamp_ns)
                self._discard([coll.slots.pop(oldest)], "superseded")
        coll.changed = True

    def _emit(self) -> list[CompletedStack]:
        coll = self._coll
        if not coll.changed or not coll.slots:
            return []
        coll.changed = False
        newest = max(coll.slots.values(), key=lambda h: h.stamp_ns)
        newest_lens = _lens_of(newest)
        if len(coll.slots) != newest_lens.length:
            return []
        frames = sorted(coll.slots.values(), key=lambda h: (_lens_of(h).focus_m, h.stamp_ns))
        earliest = min(frames, key=lambda h: h.stamp_ns)
        stack = CompletedStack(
            images=np.stack([h.image for h in frames]),
            focus_distances_m=np.array([_lens_of(h).focus_m for h in frames], dtype=np.float64),
            powers_diopt=np.array([_lens_of(h).power_diopt for h in frames], dtype=np.float64),
            stamps_ns=tuple(h.stamp_ns for h in frames),
            stamp_ns=newest.stamp_ns,
            sweep_id=newest_lens.sweep_id,
            frame_id=earliest.frame_id,
            intrinsics=earliest.intrinsics,
            optics=earliest.optics,
            rolling=self.config.rolling,
        )
        for h in frames:
            if not h.used:
                h.used = True
                self._frames_used += 1
        if not self.config.rolling:
            self._done_key = coll.key
            self._coll = _Collection()
        self._stacks_out += 1
        return [stack]

    def _expire(self, now_ns: int) -> None:
        """Discard held frames older than the sweep timeout."""
        slots = self._coll.slots
        if not slots:
            return
        limit = now_ns - self._timeout_ns
        if self.config.rolling:
            for key in [k for k, h in slots.items() if h.stamp_ns < limit]:
                self._discard([slots.pop(key)], "sweep_timeout")
        elif min(h.stamp_ns for h in slots.values()) < limit:
            self._discard(list(slots.values()), "sweep_timeout")
            self._coll = _Collection()

    # ----------------------------------------------------------------------------------------- counting
    def _discard(self, frames: Iterable[_Held], reason: str) -> None:
        for h in frames:
            if not h.used:
                self._drop_frame(reason)

    def _drop_frame(self, reason: str) -> None:
        self.drops[reason] += 1
        self.frame_drops[reason] += 1

    def _drop_lens(self, reason: str) -> None:
        self.drops[reason] += 1
        self.lens_state_drops[reason] += 1


def to_rgb8(image: Any, encoding: Any) -> tuple[npt.NDArray[np.uint8] | None, str]:
    """Convert an image of a supported encoding to (H, W, 3) uint8 RGB.

    Returns:
        (rgb, "") on success, (None, reason) otherwise, reason being "encoding" or "bad_image".
    """
    if not isinstance(encoding, str) or encoding not in SUPPORTED_ENCODINGS:
        return None, "encoding"
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        return None, "bad_image"
    if encoding == "mono8":
        if image.ndim == 3 and image.shape[2] == 1:
            image = image[:, :, 0]
        if image.ndim != 2 or image.size == 0:
            return None, "bad_image"
    else:
        channels = 4 if encoding in ("rgba8", "bgra8") else 3
        if image.ndim != 3 or image.shape[2] != channels or image.size == 0:
            return None, "bad_image"
    if encoding == "rgb8":
        return np.ascontiguousarray(image), ""
    try:  # OpenCV: ~10x faster than a strided numpy copy (1.4 ms vs 18 ms for 1920x1080 bgr8)
        return np.asarray(cv2.cvtColor(image, _CV_CODES[encoding]), dtype=np.uint8), ""
    except cv2.error:
        return None, "bad_image"


_CV_CODES = {
    "bgr8": cv2.COLOR_BGR2RGB,
    "rgba8": cv2.COLOR_RGBA2RGB,
    "bgra8": cv2.COLOR_BGRA2RGB,
    "mono8": cv2.COLOR_GRAY2RGB,
}


def _valid_stamp(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None
    stamp = int(value)
    return stamp if 0 <= stamp < _MAX_STAMP_NS else None


def _order(stamp: int, last: int | None) -> str:
    if last is None or stamp > last:
        return ""
    return "duplicate" if stamp == last else "out_of_order"


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        return None
    return int(value)


def _lens_record(state: Any, stamp: int, max_length: int) -> _LensRecord:
    settled = getattr(state, "settled", None)
    if not (settled is True or (isinstance(settled, np.bool_) and bool(settled))):
        return _LensRecord(stamp, "lens_moving")  # anything but a true bool counts as moving (the safe side)
    focus = getattr(state, "focus_m", None)
    if isinstance(focus, bool) or not isinstance(focus, (int, float, np.floating, np.integer)):
        return _LensRecord(stamp, "bad_focus")
    focus_m = float(focus)
    if not (math.isfinite(focus_m) and focus_m > 0):
        return _LensRecord(stamp, "bad_focus")
    length, index, sweep_id = (_as_int(getattr(state, n, None)) for n in ("length", "index", "sweep_id"))
    if length is None or index is None or sweep_id is None or sweep_id < 0:
        return _LensRecord(stamp, "bad_index")
    if length < 2:
        return _LensRecord(stamp, "stack_too_short")
    if length > max_length:
        return _LensRecord(stamp, "stack_too_long")
    if not 0 <= index < length:
        return _LensRecord(stamp, "bad_index")
    return _LensRecord(stamp, "", focus_m, 1.0 / focus_m, sweep_id, index, length)


def _focus_key(power_diopt: float) -> float:
    """Rolling-window key: the focus power rounded to 1e-6 dioptres (equal plan distances share a slot)."""
    return round(power_diopt, 6)


def _lens_of(held: _Held) -> _LensRecord:
    if held.lens is None:  # pragma: no cover - placed frames are always paired
        raise StackError(f"frame at {held.stamp_ns} ns was placed without a lens state")
    return held.lens
