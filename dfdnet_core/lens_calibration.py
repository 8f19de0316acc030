"""Lens calibration: driver units (mA, dioptres, V4L2 steps) <-> focus distance in metres.

A calibration is a table of measured pairs (driver value, focus distance). It is fitted by monotone piecewise-cubic
Hermite interpolation (PCHIP, Fritsch-Carlson slopes) of the focus power 1/d in dioptres against the driver value:
interpolating in dioptres keeps the curve smooth at far focus (infinity is 0 dioptres) and PCHIP never overshoots,
so a monotone table gives a monotone, invertible curve. Outside the measured range nothing is extrapolated.

Fit error is reported by leave-one-out: each interior point is predicted from a fit without it, in dioptres and in
metres. A table with large leave-one-out errors needs more points where the curve bends.

File format (YAML)::

    format: dfdnet_lens_calibration
    version: 1
    unit_name: mA              # one of UNITS
    unit_values: [...]         # driver values, strictly increasing
    focus_m: [...]             # focus distance in metres for each value (.inf allowed)
    description: "..."         # optional

Measured pairs for :func:`read_measured_pairs` are a CSV file with a header ``<unit>,focus_m`` (e.g. ``mA,focus_m``)
and one pair per row, or a YAML file ``{unit_name: mA, pairs: [[value, focus_m], ...]}``.
"""

from __future__ import annotations

import bisect
import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

import yaml

from dfdnet_core.errors import ConfigError

FILE_FORMAT = "dfdnet_lens_calibration"
FILE_VERSION = 1
UNITS: dict[str, str] = {
    "mA": "lens current in milliamperes (Optotune current mode)",
    "diopt": "lens focal power in dioptres (Optotune focal-power mode, libcamera LensPosition)",
    "step": "unitless V4L2 focus_absolute steps",
}
MIN_POINTS = 3


class CalibrationError(ConfigError):
    """A lens calibration table or file is invalid (too few points, not monotone, unknown unit)."""


def _pchip_slopes(x: Sequence[float], y: Sequence[float]) -> list[float]:
    """Fritsch-Carlson / PCHIP end and interior slopes for strictly increasing ``x``."""
    n = len(x)
    h = [x[i + 1] - x[i] for i in range(n - 1)]
    delta = [(y[i + 1] - y[i]) / h[i] for i in range(n - 1)]
    if n == 2:
        return [delta[0], delta[0]]
    d = [0.0] * n
    for i in range(1, n - 1):
        if delta[i - 1] * delta[i] <= 0:
            d[i] = 0.0
        else:  # weighted harmonic mean (Fritsch-Butland), as in PCHIP
            w1 = 2 * h[i] + h[i - 1]
            w2 = h[i] + 2 * h[i - 1]
            d[i] = (w1 + w2) / (w1 / delta[i - 1] + w2 / delta[i])
    d[0] = _pchip_end_slope(h[0], h[1], delta[0], delta[1])
    d[-1] = _pchip_end_slope(h[-1], h[-2], delta[-1], delta[-2])
    return d


def _pchip_end_slope(h0: float, h1: float, m0: float, m1: float) -> float:
    """Shape-preserving three-point end slope (the PCHIP end condition)."""
    d = ((2 * h0 + h1) * m0 - h0 * m1) / (h0 + h1)
    if d * m0 <= 0:
        return 0.0
    if m0 * m1 <= 0 and abs(d) > abs(3 * m0):
        return 3 * m0
    return d


@dataclass(frozen=True)
class _Pchip:
    """A monotone cubic interpolant y(x) on strictly increasing knots; no extrapolation."""

    x: tuple[float, ...]
    y: tuple[float, ...]
    slopes: tuple[float, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "slopes", tuple(_pchip_slopes(self.x, self.y)))

    def __call__(self, xq: float) -> float:
        x, y, d = self.x, self.y, self.slopes
        i = min(max(bisect.bisect_right(x, xq) - 1, 0), len(x) - 2)
        h = x[i + 1] - x[i]
        t = (xq - x[i]) / h
        h00 = (1 + 2 * t) * (1 - t) ** 2
        h10 = t * (1 - t) ** 2
        h01 = t * t * (3 - 2 * t)
        h11 = t * t * (t - 1)
        return h00 * y[i] + h10 * h * d[i] + h01 * y[i + 1] + h11 * h * d[i + 1]


def _diopt(focus_m: float) -> float:
    return 0.0 if math.isinf(focus_m) else 1.0 / focus_m


def _metres(power_diopt: float) -> float:
    return math.inf if power_diopt <= 0 else 1.0 / power_diopt


@dataclass(frozen=True)
class LensCalibration:
    """A fitted map between a driver unit and focus distance.

    Attributes:
        unit_name: the driver unit, a key of :data:`UNITS` ("mA", "diopt" or "step").
        unit_values: measured driver values, strictly increasing.
        focus_m: measured focus distance in metres for each driver value (``math.inf`` allowed); 1/focus_m must be
            strictly monotone (increasing or decreasing) in the driver value.
        description: free text (lens, camera, date, temperature).

    Raises:
        CalibrationError: unknown unit, fewer than :data:`MIN_POINTS` points, values not finite, duplicated or
            unsorted driver values, non-positive focus, or a focus power that is not strictly monotone.
    """

    unit_name: str
    unit_values: tuple[float, ...]
    focus_m: tuple[float, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if self.unit_name not in UNITS:
            raise CalibrationError(f"unknown calibration unit {self.unit_name!r}; known: {sorted(UNITS)}")
        object.__setattr__(self, "unit_values", tuple(float(v) for v in self.unit_values))
        object.__setattr__(self, "focus_m", tuple(float(v) for v in self.focus_m))
        units, focus = self.unit_values, self.focus_m
        if len(units) != len(focus):
            raise CalibrationError(
                f"calibration needs one focus_m per unit value, got {len(units)} values and {len(focus)} distances"
            )
        if len(units) < MIN_POINTS:
            raise CalibrationError(
                f"calibration needs at least {MIN_POINTS} measured points, got {len(units)}"
            )
        for u, f in zip(units, focus, strict=True):
            if not math.isfinite(u):
                raise CalibrationError(f"calibration {self.unit_name} value {u!r} is not a finite number")
            if math.isnan(f) or f <= 0:
                raise CalibrationError(f"calibration focus_m {f!r} (at {self.unit_name}={u!r}) must be > 0 m")
        for a, b in pairwise(units):
            if not b > a:
                raise CalibrationError(
                    f"calibration {self.unit_name} values must be strictly increasing, got {a!r} then {b!r}"
                )
        powers = [_diopt(f) for f in focus]
        steps = [q - p for p, q in pairwise(powers)]
        if not (all(s > 0 for s in steps) or all(s < 0 for s in steps)):
            i = next((k for k in range(len(steps)) if steps[k] * steps[0] <= 0), 0)
            raise CalibrationError(
                "calibration focus must change strictly monotonically with the driver value; "
                f"1/focus_m goes {powers[i]:.6g} -> {powers[i + 1]:.6g} dioptres between {self.unit_name}="
                f"{units[i]!r} and {units[i + 1]!r}"
            )

    @property
    def _forward(self) -> _Pchip:
        cached = self.__dict__.get("_forward_cache")
        if cached is None:
            cached = _Pchip(self.unit_values, tuple(_diopt(f) for f in self.focus_m))
            object.__setattr__(self, "_forward_cache", cached)
        return cached

    @property
    def unit_range(self) -> tuple[float, float]:
        """(lowest, highest) calibrated driver value, in :attr:`unit_name` units."""
        return self.unit_values[0], self.unit_values[-1]

    @property
    def power_range_diopt(self) -> tuple[float, float]:
        """(lowest, highest) calibrated focus power in dioptres (1/m)."""
        powers = [_diopt(f) for f in self.focus_m]
        return min(powers), max(powers)

    @property
    def focus_range_m(self) -> tuple[float, float]:
        """(nearest, farthest) calibrated focus distance in metres (farthest may be ``math.inf``)."""
        low, high = self.power_range_diopt
        return _metres(high), _metres(low)

    def power_diopt_from_unit(self, value: float) -> float:
        """Focus power in dioptres at driver value ``value``.

        Raises:
            CalibrationError: ``value`` is outside :attr:`unit_range` (no extrapolation).
        """
        low, high = self.unit_range
        if math.isnan(value) or not (low <= value <= high):
            raise CalibrationError(
                f"{self.unit_name} value {value!r} is outside the calibrated range [{low!r}, {high!r}]"
            )
        return self._forward(value)

    def focus_m_from_unit(self, value: float) -> float:
        """Focus distance in metres at driver value ``value`` (``math.inf`` at 0 dioptres or beyond)."""
        return _metres(self.power_diopt_from_unit(value))

    def unit_from_power_diopt(self, power_diopt: float) -> float:
        """Driver value that focuses at ``power_diopt`` dioptres (exact inverse of the fitted curve).

        Raises:
            CalibrationError: ``power_diopt`` is outside :attr:`power_range_diopt`.
        """
        low, high = self.power_range_diopt
        tol = 1e-12 * max(1.0, abs(high))
        if math.isnan(power_diopt) or not (low - tol <= power_diopt <= high + tol):
            raise CalibrationError(
                f"focus power {power_diopt!r} dioptres is outside the calibrated range [{low!r}, {high!r}] "
                f"(focus {self.focus_range_m[0]!r} to {self.focus_range_m[1]!r} m)"
            )
        f = self._forward
        x, y = f.x, f.y
        increasing = y[-1] > y[0]
        # Locate the segment, then bisect the monotone cubic inside it.
        for i in range(len(x) - 1):
            y_lo, y_hi = (y[i], y[i + 1]) if increasing else (y[i + 1], y[i])
            if y_lo - tol <= power_diopt <= y_hi + tol:
                break
        a, b = x[i], x[i + 1]
        for _ in range(200):
            mid = 0.5 * (a + b)
            if (f(mid) < power_diopt) == increasing:
                a = mid
            else:
                b = mid
            if b - a <= 1e-13 * max(1.0, abs(a), abs(b)):
                break
        return 0.5 * (a + b)

    def unit_from_focus_m(self, focus_m: float) -> float:
        """Driver value that focuses at ``focus_m`` metres (``math.inf`` allowed).

        Raises:
            CalibrationError: ``focus_m`` is not positive or outside :attr:`focus_range_m`.
        """
        if math.isnan(focus_m) or focus_m <= 0:
            raise CalibrationError(f"focus distance must be > 0 m, got {focus_m!r}")
        return self.unit_from_power_diopt(_diopt(focus_m))

    def to_yaml_dict(self) -> dict[str, object]:
        """The YAML mapping written by :func:`save_calibration`."""
        return {
            "format": FILE_FORMAT,
            "version": FILE_VERSION,
            "unit_name": self.unit_name,
            "unit_values": list(self.unit_values),
            "focus_m": list(self.focus_m),
            "description": self.description,
        }


def fit_calibration(
    unit_name: str, pairs: Iterable[tuple[float, float]], description: str = ""
) -> LensCalibration:
    """Build a calibration from measured (driver value, focus distance in metres) pairs in any order.

    Raises:
        CalibrationError: see :class:`LensCalibration`; also a pair that is not two numbers.
    """
    clean: list[tuple[float, float]] = []
    for pair in pairs:
        try:
            value, focus_m = (float(v) for v in pair)
        except (TypeError, ValueError):
            raise CalibrationError(f"a measured pair must be two numbers (value, focus_m), got {pair!r}") from None
        clean.append((value, focus_m))
    clean.sort(key=lambda p: p[0])
    return LensCalibration(
        unit_name=unit_name,
        unit_values=tuple(p[0] for p in clean),
        focus_m=tuple(p[1] for p in clean),
        description=description,
    )


@dataclass(frozen=True)
class CalibrationReport:
    """A fitted calibration and its leave-one-out error.

    Attributes:
        calibration: the fitted table.
        path: where it was written, or None.
        loo_unit_values: driver values of the interior points that were left out one at a time.
        loo_error_diopt: predicted minus measured focus power at each of them, dioptres.
        loo_error_m: predicted minus measured focus distance at each, metres (NaN where either is infinite).
    """

    calibration: LensCalibration
    path: Path | None
    loo_unit_values: tuple[float, ...]
    loo_error_diopt: tuple[float, ...]
    loo_error_m: tuple[float, ...]

    @property
    def n_points(self) -> int:
        """Number of measured points."""
        return len(self.calibration.unit_values)

    @property
    def loo_rms_diopt(self) -> float:
        """Root-mean-square leave-one-out error in dioptres."""
        e = self.loo_error_diopt
        return math.sqrt(sum(v * v for v in e) / len(e))

    @property
    def loo_max_abs_diopt(self) -> float:
        """Largest absolute leave-one-out error in dioptres."""
        return max(abs(v) for v in self.loo_error_diopt)

    @property
    def loo_max_abs_m(self) -> float:
        """Largest absolute leave-one-out error in metres over points with finite focus (NaN if none)."""
        finite = [abs(v) for v in self.loo_error_m if not math.isnan(v)]
        return max(finite) if finite else math.nan

    def summary(self) -> str:
        """A few human-readable lines for the command line."""
        cal = self.calibration
        near_m, far_m = cal.focus_range_m
        lines = [
            (
                f"lens calibration: {self.n_points} points, unit {cal.unit_name} "
                f"[{cal.unit_range[0]:g}, {cal.unit_range[1]:g}], focus {near_m:.4g} m to {far_m:.4g} m"
            ),
            (
                f"leave-one-out error: rms {self.loo_rms_diopt:.4g} dpt, "
                f"max {self.loo_max_abs_diopt:.4g} dpt, max {self.loo_max_abs_m:.4g} m"
            ),
        ]
        if self.path is not None:
            lines.append(f"written to {self.path}")
        return "\n".join(lines)


def leave_one_out(calibration: LensCalibration) -> CalibrationReport:
    """Leave-one-out errors of ``calibration`` over its interior points (ends cannot be left out).

    A table with exactly :data:`MIN_POINTS` points is refitted with two points (linear) for its one interior point.
    """
    units, focus = calibration.unit_values, calibration.focus_m
    loo_u: list[float] = []
    err_d: list[float] = []
    err_m: list[float] = []
    for i in range(1, len(units) - 1):
        xs = units[:i] + units[i + 1:]
        ys = tuple(_diopt(f) for f in focus[:i] + focus[i + 1:])
        pred_diopt = _Pchip(xs, ys)(units[i])
        true_diopt = _diopt(focus[i])
        pred_m, true_m = _metres(pred_diopt), focus[i]
        loo_u.append(units[i])
        err_d.append(pred_diopt - true_diopt)
        err_m.append(pred_m - true_m if math.isfinite(pred_m) and math.isfinite(true_m) else math.nan)
    return CalibrationReport(calibration, None, tuple(loo_u), tuple(err_d), tuple(err_m))


def save_calibration(calibration: LensCalibration, path: str | Path) -> Path:
    """Write ``calibration`` as YAML to ``path`` (parent folders are created) and return the path.

    Raises:
        CalibrationError: the file cannot be written.
    """
    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", encoding="utf-8") as stream:
            stream.write("# dfdnet lens calibration: driver value -> focus distance (metres)\n")
            yaml.safe_dump(calibration.to_yaml_dict(), stream, sort_keys=False)
    except OSError as exc:
        raise CalibrationError(f"cannot write lens calibration {str(out)!r}: {exc}") from exc
    return out


def load_calibration(path: str | Path) -> LensCalibration:
    """Read a calibration written by :func:`save_calibration`.

    Raises:
        CalibrationError: missing file, not YAML, wrong format/version, missing keys or invalid table; the
            message names the file.
    """
    src = Path(path)
    try:
        data = yaml.safe_load(src.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CalibrationError(f"cannot read lens calibration {str(src)!r}: {exc}") from exc
    except yaml.YAMLError as exc:
        raise CalibrationError(f"lens calibration {str(src)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or data.get("format") != FILE_FORMAT:
        raise CalibrationError(f"{str(src)!r} is not a lens calibration (expected 'format: {FILE_FORMAT}')")
    if data.get("version") != FILE_VERSION:
        raise CalibrationError(
            f"lens calibration {str(src)!r} has version {data.get('version')!r}; supported: {FILE_VERSION}"
        )
    unknown = set(data) - {"format", "version", "unit_name", "unit_values", "focus_m", "description"}
    if unknown:
        raise CalibrationError(f"lens calibration {str(src)!r} has unknown keys {sorted(unknown)}")
    try:
        return LensCalibration(
            unit_name=data["unit_name"],
            unit_values=tuple(data["unit_values"]),
            focus_m=tuple(data["focus_m"]),
            description=str(data.get("description", "")),
        )
    except KeyError as exc:
        raise CalibrationError(f"lens calibration {str(src)!r} lacks key {exc.args[0]!r}") from None
    except (TypeError, ValueError) as exc:
        raise CalibrationError(f"lens calibration {str(src)!r}: {exc}") from None
    except CalibrationError as exc:
        raise CalibrationError(f"lens calibration {str(src)!r}: {exc}") from None


@dataclass(frozen=True)
class MeasuredPairs:
    """Measured (driver value, focus distance in metres) pairs read from a file.

    Attributes:
        unit_name: the unit named in the file (CSV header or YAML ``unit_name``), or None if not given.
        pairs: (driver value, focus_m) in file order.
    """

    unit_name: str | None
    pairs: tuple[tuple[float, float], ...]


def read_measured_pairs(path: str | Path) -> MeasuredPairs:
    """Read measured pairs from CSV (``<unit>,focus_m`` header) or YAML (``unit_name`` + ``pairs``).

    The file type is chosen by suffix: ``.csv`` or ``.yaml``/``.yml``. In CSV, a header whose first column is
    ``value`` or ``unit`` leaves the unit unnamed; ``inf`` is accepted as a focus distance.

    Raises:
        CalibrationError: missing file, unknown suffix, bad header, a cell that is not a number; the message names
            the file and the line.
    """
    src = Path(path)
    suffix = src.suffix.lower()
    try:
        text = src.read_text(encoding="utf-8")
    except OSError as exc:
        raise CalibrationError(f"cannot read measured pairs {str(src)!r}: {exc}") from exc
    if suffix == ".csv":
        return _read_pairs_csv(text, src)
    if suffix in (".yaml", ".yml"):
        return _read_pairs_yaml(text, src)
    raise CalibrationError(f"measured pairs {str(src)!r}: unsupported file type {suffix!r}; use .csv or .yaml")


def _read_pairs_csv(text: str, src: Path) -> MeasuredPairs:
    rows = [
        (n, row) for n, row in enumerate(csv.reader(text.splitlines()), start=1)
        if row and not row[0].lstrip().startswith("#")
    ]
    if not rows:
        raise CalibrationError(f"measured pairs {str(src)!r} is empty")
    line, header = rows[0]
    header = [h.strip() for h in header]
    if len(header) != 2 or header[1] != "focus_m":
        raise CalibrationError(
            f"measured pairs {str(src)!r} line {line}: header must be '<unit>,focus_m' "
            f"(unit one of {sorted(UNITS)}), got {','.join(header)!r}"
        )
    unit_name = None if header[0] in ("value", "unit") else header[0]
    if unit_name is not None and unit_name not in UNITS:
        raise CalibrationError(
            f"measured pairs {str(src)!r} line {line}: unknown unit {unit_name!r}; known: {sorted(UNITS)}"
        )
    pairs = []
    for line, row in rows[1:]:
        try:
            if len(row) != 2:
                raise ValueError
            pairs.append((float(row[0]), float(row[1])))
        except ValueError:
            raise CalibrationError(
                f"measured pairs {str(src)!r} line {line}: expected two numbers, got {','.join(row)!r}"
            ) from None
    return MeasuredPairs(unit_name, tuple(pairs))


def _read_pairs_yaml(text: str, src: Path) -> MeasuredPairs:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CalibrationError(f"measured pairs {str(src)!r} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("pairs"), list):
        raise CalibrationError(f"measured pairs {str(src)!r} needs a 'pairs' list of [value, focus_m]")
    unit_name = data.get("unit_name")
    if unit_name is not None and unit_name not in UNITS:
        raise CalibrationError(f"measured pairs {str(src)!r}: unknown unit {unit_name!r}; known: {sorted(UNITS)}")
    pairs = []
    for k, item in enumerate(data["pairs"]):
        try:
            value, focus_m = item
            pairs.append((float(value), float(focus_m)))
        except (TypeError, ValueError):
            raise CalibrationError(
                f"measured pairs {str(src)!r}: pairs[{k}] must be [value, focus_m], got {item!r}"
            ) from None
    return MeasuredPairs(unit_name, tuple(pairs))


def calibrate_from_pairs(
    unit_name: str,
    pairs: Iterable[tuple[float, float]],
    out_path: str | Path | None,
    description: str = "",
) -> CalibrationReport:
    """Fit a calibration to measured pairs, report its leave-one-out error and write it to ``out_path``.

    Args:
        unit_name: driver unit of the first element of each pair ("mA", "diopt" or "step").
        pairs: (driver value, focus distance in metres) in any order.
        out_path: YAML file to write, or None to only fit.
        description: free text stored in the file.

    Returns:
        The report (calibration, path written, leave-one-out errors in dioptres and metres).

    Raises:
        CalibrationError: invalid pairs (see :class:`LensCalibration`) or the file cannot be written.
    """
    calibration = fit_calibration(unit_name, pairs, description)
    report = leave_one_out(calibration)
    path = save_calibration(calibration, out_path) if out_path is not None else None
    return CalibrationReport(
        calibration, path, report.loo_unit_values, report.loo_error_diopt, report.loo_error_m
    )
