"""The `dfdnet` command line: argument handling and the calibrate-lens round trip."""

from __future__ import annotations

import pytest

from dfdnet_core.cli import build_parser, main
from dfdnet_core.lens_calibration import load_calibration


def test_calibrate_lens_fits_and_writes_a_calibration_the_driver_can_load(tmp_path, capsys):
    pairs = tmp_path / "pairs.csv"
    # a lens whose power grows 0.0325 dpt per mA from 0.2 dpt: exact in dioptres, so the fit must reproduce it
    pairs.write_text("mA,focus_m\n" + "".join(f"{ma},{1 / (0.2 + 0.0325 * ma)!r}\n" for ma in range(0, 100, 20)))
    out = tmp_path / "cal.yaml"
    assert main(["calibrate-lens", str(pairs), "--out", str(out)]) == 0
    assert "leave-one-out" in capsys.readouterr().out
    cal = load_calibration(out)
    assert cal.unit_name == "mA"
    assert cal.power_diopt_from_unit(30.0) == pytest.approx(0.2 + 0.0325 * 30, abs=1e-3)


def test_calibrate_lens_without_a_unit_asks_for_one(tmp_path, capsys):
    pairs = tmp_path / "pairs.yaml"
    pairs.write_text("pairs:\n  - [0, 2.0]\n  - [10, 1.0]\n  - [20, 0.5]\n")
    assert main(["calibrate-lens", str(pairs), "--out", str(tmp_path / "c.yaml")]) == 2
    assert "pass --unit" in capsys.readouterr().err


def test_unknown_subcommand_is_rejected():
    with pytest.raises(SystemExit):
        build_parser().parse_args(["fly"])
