"""Tests of lens calibration: monotone fit in dioptres, inversion, leave-one-out error, files."""

from __future__ import annotations

import math
import random
from itertools import pairwise
from pathlib import Path

import pytest

from dfdnet_core.errors import ConfigError
from dfdnet_core.lens_calibration import (
    CalibrationError,
    LensCalibration,
    calibrate_from_pairs,
    fit_calibration,
    leave_one_out,
    load_calibration,
    read_measured_pairs,
    save_calibration,
)


# Liquid lens in current mode in front of an objective (f = 16 mm) focused at 2 m: the liquid lens power is
# nonlinear in current, P_lens(I) = -1.5 + 0.045 I - 4e-5 I^2 dpt (I in mA, 0..250 mA, monotone rising), and
# thin lenses in contact add powers, so the system focuses at 1/d = P_lens + 1/2 m.
def focus_power_diopt(current_ma: float) -> float:
    return -1.5 + 0.045 * current_ma - 4e-5 * current_ma**2 + 0.5


def focus_m(current_ma: float) -> float:
    power = focus_power_diopt(current_ma)
    return math.inf if power <= 0 else 1 / power


HEAD = "format: dfdnet_lens_calibration\nversion: 1\nunit_name: mA\nunit_values: [1, 2, 3]\n"
MEASURED_MA = [25.0, 45.0, 70.0, 100.0, 130.0, 160.0, 190.0, 220.0, 250.0]


def _pairs() -> list[tuple[float, float]]:
    return [(ma, focus_m(ma)) for ma in MEASURED_MA]


def test_fit_reproduces_a_known_thin_lens_relation_between_the_measured_points() -> None:
    calibration = fit_calibration("mA", _pairs())
    rng = random.Random(0)
    for _ in range(300):
        ma = rng.uniform(25.0, 250.0)
        assert calibration.power_diopt_from_unit(ma) == pytest.approx(focus_power_diopt(ma), abs=2e-3)
        # the inverse is exact for the fitted curve, and close to the true current
        power = calibration.power_diopt_from_unit(ma)
        assert calibration.unit_from_power_diopt(power) == pytest.approx(ma, abs=1e-8)
    for d in (0.3, 0.5, 1.0, 2.0):
        assert calibration.unit_from_focus_m(d) == pytest.approx(
            _true_current_for_power(1 / d), abs=0.1
        )
    assert calibration.focus_range_m == pytest.approx((focus_m(250.0), focus_m(25.0)))


def _true_current_for_power(power_diopt: float) -> float:
    # solve -4e-5 I^2 + 0.045 I - 1.0 - power = 0 for the root in 0..562 mA
    a, b, c = -4e-5, 0.045, -1.0 - power_diopt
    return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


def test_fit_matches_scipy_pchip() -> None:
    interpolate = pytest.importorskip("scipy.interpolate")
    calibration = fit_calibration("mA", _pairs())
    reference = interpolate.PchipInterpolator(MEASURED_MA, [focus_power_diopt(m) for m in MEASURED_MA])
    for ma in [25.0 + 0.37 * k for k in range(600)]:
        assert calibration.power_diopt_from_unit(ma) == pytest.approx(float(reference(ma)), abs=1e-12)


def test_fit_is_monotone_and_reaches_infinity_at_zero_dioptres() -> None:
    # V4L2-like table with focus decreasing as steps rise, and infinity at one end
    calibration = fit_calibration("step", [(0, 0.1), (300, 0.25), (600, 1.0), (1000, math.inf)])
    values = [calibration.power_diopt_from_unit(s) for s in range(0, 1001, 5)]
    assert all(b <= a for a, b in pairwise(values))
    assert calibration.focus_m_from_unit(1000) == math.inf
    assert calibration.unit_from_focus_m(math.inf) == pytest.approx(1000)
    assert calibration.focus_range_m == (0.1, math.inf)


def test_leave_one_out_is_zero_for_data_linear_in_dioptres_and_sized_for_curved_data() -> None:
    linear = fit_calibration("diopt", [(p, 1 / (0.8 * p + 0.2)) for p in (0.0, 1.0, 2.5, 4.0, 6.0)])
    report = leave_one_out(linear)
    assert report.loo_unit_values == (1.0, 2.5, 4.0)
    assert report.loo_max_abs_diopt == pytest.approx(0.0, abs=1e-12)
    assert report.loo_max_abs_m == pytest.approx(0.0, abs=1e-12)
    curved = leave_one_out(fit_calibration("mA", _pairs()))
    # independent check of one entry: leaving out 100 mA, the fit through the rest misses the curve there
    without = fit_calibration("mA", [p for p in _pairs() if p[0] != 100.0])
    expected = without.power_diopt_from_unit(100.0) - focus_power_diopt(100.0)
    assert curved.loo_error_diopt[MEASURED_MA.index(100.0) - 1] == pytest.approx(expected, abs=1e-12)
    assert 1e-4 < curved.loo_max_abs_diopt < 0.05
    assert curved.loo_rms_diopt <= curved.loo_max_abs_diopt


def test_calibrate_from_pairs_writes_yaml_that_loads_back(tmp_path: Path) -> None:
    out = tmp_path / "cal" / "lens.yaml"
    report = calibrate_from_pairs("mA", list(reversed(_pairs())), out, description="EL-16-40 bench, 25 C")
    assert report.path == out and out.exists()
    assert report.n_points == len(MEASURED_MA)
    loaded = load_calibration(out)
    assert loaded == report.calibration
    assert loaded.unit_values == tuple(MEASURED_MA)  # sorted by driver value
    assert loaded.description == "EL-16-40 bench, 25 C"
    text = report.summary()
    assert "9 points, unit mA" in text and f"written to {out}" in text
    assert calibrate_from_pairs("mA", _pairs(), None).path is None


def test_infinity_round_trips_through_yaml(tmp_path: Path) -> None:
    calibration = fit_calibration("step", [(0, math.inf), (10, 2.0), (20, 1.0)])
    loaded = load_calibration(save_calibration(calibration, tmp_path / "c.yaml"))
    assert loaded.focus_m[0] == math.inf and loaded == calibration


@pytest.mark.parametrize(
    ("unit", "pairs", "match"),
    [
        ("mA", [(0, 1.0), (10, 0.5)], "at least 3 measured points, got 2"),
        ("mA", [(0, 1.0), (10, 0.5), (10, 0.4)], r"strictly increasing, got 10\.0 then 10\.0"),
        ("mA", [(0, 1.0), (10, 0.5), (20, 0.7), (30, 0.2)], r"strictly monotonically.*between mA=10\.0 and 20\.0"),
        ("mA", [(0, 1.0), (10, 1.0), (20, 0.5)], r"strictly monotonically.*between mA=0\.0 and 10\.0"),
        ("mA", [(0, 1.0), (10, -0.5), (20, 0.2)], r"focus_m -0\.5 \(at mA=10\.0\) must be > 0 m"),
        ("mA", [(0, 1.0), (math.nan, 0.5), (20, 0.2)], "value nan is not a finite number"),
        ("volts", [(0, 1.0), (1, 0.5), (2, 0.2)], r"unknown calibration unit 'volts'; known: \['diopt', 'mA'"),
        ("mA", [(0, 1.0), (1,), (2, 0.2)], r"must be two numbers \(value, focus_m\), got \(1,\)"),
    ],
)
def test_invalid_tables_are_rejected(unit: str, pairs: list[tuple[float, ...]], match: str) -> None:
    with pytest.raises(CalibrationError, match=match):
        fit_calibration(unit, pairs)  # type: ignore[arg-type]


def test_calibration_error_is_a_config_error_and_nothing_is_extrapolated() -> None:
    calibration = fit_calibration("mA", _pairs())
    with pytest.raises(ConfigError, match=r"mA value 300\.0 is outside the calibrated range \[25\.0, 250\.0\]"):
        calibration.focus_m_from_unit(300.0)
    with pytest.raises(CalibrationError, match=r"focus power 20\.0 dioptres is outside the calibrated range"):
        calibration.unit_from_focus_m(0.05)
    with pytest.raises(CalibrationError, match="focus distance must be > 0 m, got 0.0"):
        calibration.unit_from_focus_m(0.0)
    with pytest.raises(CalibrationError, match="one focus_m per unit value, got 3 values and 2 distances"):
        LensCalibration("mA", (0.0, 1.0, 2.0), (1.0, 0.5))


def test_read_measured_pairs_from_csv_and_yaml(tmp_path: Path) -> None:
    csv_path = tmp_path / "pairs.csv"
    csv_path.write_text("# bench 2024\nstep,focus_m\n0,inf\n300,1.0\n600, 0.25\n")
    measured = read_measured_pairs(csv_path)
    assert measured.unit_name == "step"
    assert measured.pairs == ((0.0, math.inf), (300.0, 1.0), (600.0, 0.25))
    unnamed = tmp_path / "u.csv"
    unnamed.write_text("value,focus_m\n1,2\n")
    assert read_measured_pairs(unnamed).unit_name is None
    yaml_path = tmp_path / "pairs.yaml"
    yaml_path.write_text("unit_name: mA\npairs:\n  - [10, 2.0]\n  - [20, .inf]\n")
    assert read_measured_pairs(yaml_path).pairs == ((10.0, 2.0), (20.0, math.inf))


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("a.csv", "mA,distance\n1,2\n", r"line 1: header must be '<unit>,focus_m'"),
        ("b.csv", "amps,focus_m\n1,2\n", r"line 1: unknown unit 'amps'"),
        ("c.csv", "mA,focus_m\n1,2\n3,x\n", r"line 3: expected two numbers, got '3,x'"),
        ("d.csv", "", "is empty"),
        ("e.yaml", "unit_name: mA\n", "needs a 'pairs' list"),
        ("f.yaml", "pairs: [[1, 2], [3]]\n", r"pairs\[1\] must be \[value, focus_m\], got \[3\]"),
        ("g.yaml", "pairs: [[1, 2]\n", "is not valid YAML"),
        ("h.txt", "1 2\n", r"unsupported file type '\.txt'"),
    ],
)
def test_bad_pair_files_name_the_file_and_line(tmp_path: Path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(CalibrationError, match=match) as info:
        read_measured_pairs(path)
    assert name in str(info.value)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("format: other\n", "is not a lens calibration"),
        ("format: dfdnet_lens_calibration\nversion: 7\n", "has version 7; supported: 1"),
        (HEAD, "lacks key 'focus_m'"),
        (HEAD + "focus_m: [1, 0.5, 0.2]\ncolour: red\n", r"unknown keys \['colour'\]"),
        (HEAD + "focus_m: [1, 0.5, 0.7]\n", "strictly monotonically"),
        ("format: [\n", "is not valid YAML"),
    ],
)
def test_bad_calibration_files_are_rejected_naming_the_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(CalibrationError, match=match) as info:
        load_calibration(path)
    assert "bad.yaml" in str(info.value)
    with pytest.raises(CalibrationError, match="cannot read lens calibration"):
        load_calibration(tmp_path / "missing.yaml")
