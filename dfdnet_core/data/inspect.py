"""Smoke check of a data set folder.

Usage: ``python -m dfdnet_core.data.inspect <name> <root> [-o key=value ...] [-i index]``.
Prints the number of samples and, for one sample, the array shapes, the depth (or disparity) range
and the focus distances. Option values are parsed as YAML (``-o max_side_px=1024``,
``-o runs=[1,5,9]``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from dfdnet_core.config import parse_key_values
from dfdnet_core.data.registry import DATASETS, open_dataset
from dfdnet_core.data.sample import RgbdSample, StackSample
from dfdnet_core.errors import ConfigError, DfdError


def _range(label: str, values: np.ndarray[Any, Any] | None, unit: str) -> str:
    if values is None:
        return f"{label}: none"
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return f"{label}: no valid pixel"
    return (
        f"{label}: {finite.min():.4g} .. {finite.max():.4g} {unit} (median "
        f"{np.median(finite):.4g}), valid {finite.size / values.size:.1%}"
    )


def describe(sample: RgbdSample | StackSample) -> list[str]:
    """Lines describing one sample: shapes, ranges with units, intrinsics."""
    lines = [f"name: {sample.name}"]
    if isinstance(sample, RgbdSample):
        lines.append(
            f"rgb: {sample.rgb.shape} {sample.rgb.dtype}; depth_m: {sample.depth_m.shape} "
            f"{sample.depth_m.dtype}"
        )
        lines.append(_range("depth", sample.depth_m, "m"))
    else:
        lines.append(f"images: {sample.images.shape} {sample.images.dtype}")
        lines.append(
            "focus distances: " + ", ".join(f"{d:.4g}" for d in sample.focus_distances_m) + " m"
        )
        lines.append(_range("depth", sample.depth_m, "m"))
        if sample.disparity_px is not None:
            lines.append(_range("disparity", sample.disparity_px, "px") + " (ground truth)")
        lines.append(f"f_number: {sample.f_number}; focal_length_m: {sample.focal_length_m}")
    k = sample.intrinsics
    lines.append(
        "intrinsics: none"
        if k is None
        else f"intrinsics: {k.width_px}x{k.height_px} px, fx {k.fx_px:.2f}, fy {k.fy_px:.2f}, "
        f"cx {k.cx_px:.2f}, cy {k.cy_px:.2f}"
    )
    return lines


def _parse_options(pairs: Sequence[str]) -> dict[str, Any]:
    try:
        return parse_key_values(pairs, "option")
    except ConfigError as exc:
        raise SystemExit(str(exc)) from None


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the process exit status (0 ok, 1 data error)."""
    parser = argparse.ArgumentParser(
        prog="python -m dfdnet_core.data.inspect", description=__doc__.splitlines()[0]
    )
    parser.add_argument("name", choices=sorted(DATASETS))
    parser.add_argument("root")
    parser.add_argument(
        "-o", "--option", action="append", default=[], help="loader option key=value (YAML value)"
    )
    parser.add_argument("-i", "--index", type=int, default=0, help="sample to describe (default 0)")
    args = parser.parse_args(argv)
    try:
        dataset = open_dataset(args.name, args.root, **_parse_options(args.option))
        print(f"{args.name}: {len(dataset)} samples in {args.root}")
        for line in describe(dataset[args.index]):
            print("  " + line)
    except DfdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
