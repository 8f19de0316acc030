"""Focus sweep planning: which focus distances the lens visits, in which order (logic of focus_sweep_controller).

Distances are uniform in disparity (1/d) between ``near_m`` and ``far_m`` (seed paper, eq. 2), computed by
:func:`dfdnet_core.optics.disparity_uniform_focus_m`. Every sweep contains each of its ``n_focus`` distances exactly
once. In ``"pingpong"`` order even sweeps run near -> far and odd sweeps far -> near, so the lens never makes the long
return jump; the turning distance therefore ends one sweep and starts the next. That second visit needs no motion
(:attr:`SweepStep.needs_move` is False) and no settle time, and gives the new sweep its own fresh frame. In
``"ascending"`` order every sweep runs near -> far.

In ``"adaptive"`` mode, :meth:`SweepPlanner.update_from_depth` takes the latest depth image and sets the range of
the NEXT sweep to the 5 % / 95 % quantiles of its disparity (the seed paper's suggestion), clipped to the lens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from dfdnet_core.errors import ConfigError, OpticsError
from dfdnet_core.optics import disparity_uniform_focus_m

SWEEP_ORDERS = ("pingpong", "ascending")
SWEEP_MODES = ("fixed", "adaptive")
MAX_FOCUS_COUNT = 64


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
        raise ConfigError(f"sweep {name} must be a number, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class SweepConfig:
    """Parameters of the focus sweep (and of the focus_sweep_controller node, 1:1).

    Attributes:
        near_m: nearest focus distance in metres (fixed mode; first range in adaptive mode).
        far_m: farthest focus distance in metres, finite.
        n_focus: focus distances per sweep, 2 to 64.
        settle_time_s: time the lens needs to settle after a move, in seconds.
        order: "pingpong" (alternate direction, no return jump) or "ascending" (always near -> far).
        mode: "fixed" (near_m..far_m forever) or "adaptive" (range follows the last depth image).
        adaptive_quantiles: (low, high) quantiles of the depth image's disparity that set the far and near focus.
        adaptive_min_valid_fraction: fewer finite positive depth pixels than this fraction keep the old range.
        adaptive_min_span_diopt: an adaptive range is widened to at least this many dioptres (flat scenes).
        min_focus_m: nearest distance the lens can focus at, in metres.
        max_focus_m: farthest distance the lens is driven to, in metres, finite.
    """

    near_m: float = field(
        default=0.5, metadata={"description": "nearest focus distance (metres)", "range": (0.01, 1000.0, 0.0)}
    )
    far_m: float = field(
        default=5.0, metadata={"description": "farthest focus distance (metres)", "range": (0.01, 1000.0, 0.0)}
    )
    n_focus: int = field(
        default=5, metadata={"description": "focus distances per sweep", "range": (2, MAX_FOCUS_COUNT, 1)}
    )
    settle_time_s: float = field(
        default=0.01, metadata={"description": "lens settle time after a move (seconds)", "range": (0.0, 10.0, 0.0)}
    )
    order: str = field(
        default="pingpong", metadata={"description": "sweep direction pattern", "choices": SWEEP_ORDERS}
    )
    mode: str = field(
        default="fixed",
        metadata={"description": "fixed near_m..far_m, or adaptive from the last depth image", "choices": SWEEP_MODES},
    )
    adaptive_quantiles: tuple[float, float] = field(
        default=(0.05, 0.95),
        metadata={"description": "(low, high) disparity quantiles of the depth image giving (far, near) focus"},
    )
    adaptive_min_valid_fraction: float = field(
        default=0.05,
        metadata={"description": "least fraction of valid depth pixels to adapt the range", "range": (0.0, 1.0, 0.0)},
    )
    adaptive_min_span_diopt: float = field(
        default=0.2,
        metadata={"description": "least width of an adaptive range (dioptres)", "range": (0.0, 100.0, 0.0)},
    )
    min_focus_m: float = field(
        default=0.1, metadata={"description": "nearest focus the lens reaches (metres)", "range": (0.001, 1000.0, 0.0)}
    )
    max_focus_m: float = field(
        default=100.0,
        metadata={"description": "farthest focus the lens is driven to (metres)", "range": (0.001, 1e6, 0.0)},
    )

    def __post_init__(self) -> None:
        lo_m, hi_m = _number("min_focus_m", self.min_focus_m), _number("max_focus_m", self.max_focus_m)
        if not (0 < lo_m < hi_m < math.inf):
            raise ConfigError(
                f"sweep lens range must satisfy 0 < min_focus_m < max_focus_m < inf, "
                f"got min_focus_m={self.min_focus_m!r}, max_focus_m={self.max_focus_m!r}"
            )
        near, far = _number("near_m", self.near_m), _number("far_m", self.far_m)
        if not (lo_m <= near < far <= hi_m):
            raise ConfigError(
                f"sweep needs min_focus_m <= near_m < far_m <= max_focus_m, got near_m={self.near_m!r}, "
                f"far_m={self.far_m!r} with lens range [{self.min_focus_m!r}, {self.max_focus_m!r}] m"
            )
        n = self.n_focus
        if isinstance(n, bool) or not isinstance(n, int) or not 2 <= n <= MAX_FOCUS_COUNT:
            raise ConfigError(f"sweep n_focus must be an int in [2, {MAX_FOCUS_COUNT}], got {n!r}")
        settle = _number("settle_time_s", self.settle_time_s)
        if not 0 <= settle <= 10:
            raise ConfigError(f"sweep settle_time_s must be in [0, 10] s, got {self.settle_time_s!r}")
        if self.order not in SWEEP_ORDERS:
            raise ConfigError(f"sweep order must be one of {SWEEP_ORDERS}, got {self.order!r}")
        if self.mode not in SWEEP_MODES:
            raise ConfigError(f"sweep mode must be one of {SWEEP_MODES}, got {self.mode!r}")
        q = self.adaptive_quantiles
        if not isinstance(q, tuple) or len(q) != 2:
            raise ConfigError(f"sweep adaptive_quantiles must be a (low, high) tuple, got {q!r}")
        q_lo, q_hi = _number("adaptive_quantiles[0]", q[0]), _number("adaptive_quantiles[1]", q[1])
        if not 0 <= q_lo < q_hi <= 1:
            raise ConfigError(f"sweep adaptive_quantiles need 0 <= low < high <= 1, got {q!r}")
        frac = _number("adaptive_min_valid_fraction", self.adaptive_min_valid_fraction)
        if not 0 < frac <= 1:
            raise ConfigError(
                f"sweep adaptive_min_valid_fraction must be in (0, 1], got {self.adaptive_min_valid_fraction!r}"
            )
        span = _number("adaptive_min_span_diopt", self.adaptive_min_span_diopt)
        if not 0 < span <= 1 / lo_m - 1 / hi_m:
            raise ConfigError(
                f"sweep adaptive_min_span_diopt must be in (0, {1 / lo_m - 1 / hi_m:.6g}] dioptres "
                f"(the lens range), got {self.adaptive_min_span_diopt!r}"
            )


@dataclass(frozen=True)
class SweepStep:
    """One step of a sweep: drive the lens to ``focus_m``.

    Attributes:
        sweep_id: counter of the sweep, from 0.
        index: position in the sweep, 0 .. length - 1, in driving order.
        length: distances in this sweep.
        focus_m: focus distance in metres.
        power_diopt: optical power in dioptres (1 / focus_m).
        needs_move: False when the lens is already at ``focus_m`` (the ping-pong turn): no settle wait needed.
    """

    sweep_id: int
    index: int
    length: int
    focus_m: float
    power_diopt: float
    needs_move: bool


@dataclass(frozen=True)
class AdaptiveRange:
    """A focus range derived from a depth image.

    Attributes:
        near_m: nearest focus distance in metres (the range in force when ``reason`` is set, or NaN).
        far_m: farthest focus distance in metres (likewise).
        valid_fraction: fraction of the depth pixels that were finite and > 0.
        reason: "" when the range was derived; else why not ("bad_depth", "too_few_valid_px", "fixed_mode").
    """

    near_m: float
    far_m: float
    valid_fraction: float
    reason: str = ""

    @property
    def ok(self) -> bool:
        """True when the range came from the depth image."""
        return not self.reason


def plan_sweep(near_m: float, far_m: float, n_focus: int) -> list[float]:
    """``n_focus`` focus distances in metres from ``near_m`` to ``far_m``, uniform in disparity, near first.

    Raises:
        ConfigError: ``n_focus`` < 2, or not 0 < near_m < far_m < inf.
    """
    if isinstance(n_focus, bool) or not isinstance(n_focus, int) or n_focus < 2:
        raise ConfigError(f"a sweep needs an int n_focus >= 2, got {n_focus!r}")
    if not (0 < near_m < far_m < math.inf):
        raise ConfigError(f"a sweep needs 0 < near_m < far_m < inf, got near_m={near_m!r}, far_m={far_m!r}")
    try:
        return disparity_uniform_focus_m(near_m, far_m, n_focus)
    except OpticsError as err:  # pragma: no cover - the checks above cover optics' conditions
        raise ConfigError(str(err)) from err


def adaptive_range_from_depth(
    depth_m: Any,
    quantiles: tuple[float, float] = (0.05, 0.95),
    limits_m: tuple[float, float] = (0.1, 100.0),
    min_valid_fraction: float = 0.05,
    min_span_diopt: float = 0.2,
) -> AdaptiveRange:
    """Focus range covering a depth image: quantiles of its disparity, clipped to the lens range.

    ``far_m = 1 / quantile(disparity, low)``, ``near_m = 1 / quantile(disparity, high)`` over the finite, positive
    depth pixels; both clipped to ``limits_m``; a range narrower than ``min_span_diopt`` is widened about its centre
    (in disparity), staying inside the limits. Never raises on bad depth data: it returns a reason instead.

    Args:
        depth_m: (H, W) floating depth image in metres; NaN, inf and values <= 0 mean "no depth".
        quantiles: (low, high) disparity quantiles.
        limits_m: (min_focus_m, max_focus_m) of the lens, finite.
        min_valid_fraction: least fraction of valid pixels needed.
        min_span_diopt: least width of the range in dioptres.

    Raises:
        ConfigError: the quantiles, limits, fraction or span are invalid (via :class:`SweepConfig`).
    """
    lo_m, hi_m = limits_m
    SweepConfig(
        near_m=lo_m,
        far_m=hi_m,
        adaptive_quantiles=tuple(quantiles),  # type: ignore[arg-type]
        adaptive_min_valid_fraction=min_valid_fraction,
        adaptive_min_span_diopt=min_span_diopt,
        min_focus_m=lo_m,
        max_focus_m=hi_m,
    )
    if not isinstance(depth_m, np.ndarray) or depth_m.ndim != 2 or depth_m.size == 0:
        return AdaptiveRange(math.nan, math.nan, 0.0, "bad_depth")
    if not np.issubdtype(depth_m.dtype, np.floating):
        return AdaptiveRange(math.nan, math.nan, 0.0, "bad_depth")
    depth = depth_m.astype(np.float64, copy=False)
    with np.errstate(invalid="ignore"):
        valid = np.isfinite(depth) & (depth > 0)
    fraction = float(np.count_nonzero(valid)) / depth.size
    if fraction < min_valid_fraction:
        return AdaptiveRange(math.nan, math.nan, fraction, "too_few_valid_px")
    disparity = 1.0 / depth[valid]
    d_min, d_max = 1.0 / hi_m, 1.0 / lo_m  # lens limits in dioptres
    d_far, d_near = np.clip(np.quantile(disparity, list(quantiles)), d_min, d_max)
    span = min(max(float(d_near - d_far), min_span_diopt), d_max - d_min)
    centre = min(max(0.5 * float(d_near + d_far), d_min + 0.5 * span), d_max - 0.5 * span)
    d_near, d_far = min(centre + 0.5 * span, d_max), max(centre - 0.5 * span, d_min)
    return AdaptiveRange(1.0 / d_near, 1.0 / d_far, fraction)


class SweepPlanner:
    """Yields :class:`SweepStep` forever; in adaptive mode the range follows :meth:`update_from_depth`."""

    def __init__(self, config: SweepConfig | None = None) -> None:
        """Args: config: the sweep parameters; the defaults when None.

        Raises:
            ConfigError: ``config`` is not a :class:`SweepConfig`.
        """
        if config is None:
            config = SweepConfig()
        if not isinstance(config, SweepConfig):
            raise ConfigError(f"config must be a SweepConfig, got {config!r}")
        self.config = config
        self._range_m = (config.near_m, config.far_m)
        self._next_range_m = self._range_m
        self._sweep_id = 0
        self._index = 0
        self._distances_m: list[float] = []
        self._last_focus_m: float | None = None

    @property
    def range_m(self) -> tuple[float, float]:
        """(near_m, far_m) of the current sweep."""
        return self._range_m

    @property
    def next_range_m(self) -> tuple[float, float]:
        """(near_m, far_m) the next sweep will use."""
        return self._next_range_m

    def next_step(self) -> SweepStep:
        """The next step; a new sweep's distances are planned at its first step."""
        cfg = self.config
        if self._index == 0:
            self._range_m = self._next_range_m
            distances = plan_sweep(*self._range_m, cfg.n_focus)
            if cfg.order == "pingpong" and self._sweep_id % 2 == 1:
                distances.reverse()
            self._distances_m = distances
        focus_m = self._distances_m[self._index]
        step = SweepStep(
            self._sweep_id, self._index, cfg.n_focus, focus_m, 1.0 / focus_m, focus_m != self._last_focus_m
        )
        self._last_focus_m = focus_m
        self._index += 1
        if self._index == cfg.n_focus:
            self._index = 0
            self._sweep_id += 1
        return step

    def __iter__(self) -> Iterator[SweepStep]:
        """Steps forever."""
        while True:
            yield self.next_step()

    def update_from_depth(self, depth_m: Any) -> AdaptiveRange:
        """Set the next sweep's range from a depth image (adaptive mode); never raises on bad depth.

        Returns:
            The range the next sweep will use; ``reason`` says why the previous range was kept, if it was.
        """
        cfg = self.config
        if cfg.mode != "adaptive":
            return AdaptiveRange(*self._next_range_m, math.nan, "fixed_mode")
        found = adaptive_range_from_depth(
            depth_m,
            cfg.adaptive_quantiles,
            (cfg.min_focus_m, cfg.max_focus_m),
            cfg.adaptive_min_valid_fraction,
            cfg.adaptive_min_span_diopt,
        )
        if not found.ok:
            return AdaptiveRange(*self._next_range_m, found.valid_fraction, found.reason)
        self._next_range_m = (found.near_m, found.far_m)
        return found
