"""Depth image -> organised PointCloud2 byte buffer, on the CPU (dfdnet_core.pointcloud).

Times, per image size, the back-projection (``depth_to_points``), the byte packing
(``pointcloud2_fields_and_data``) and both together, without and with colour (point_step 16 and 32). The depth is
a random 0.3-5 m image with 10 % NaN; milliseconds are the median and minimum over several runs after a warm-up.

Writes docs/benchmarks/pointcloud.json (flat keys with units) and docs/benchmarks/pointcloud.md (a section for
docs/BENCHMARKS.md), and prints the table.

Run from the repository root:
    python benchmarks/pointcloud.py                 # 640x480 and 1280x720, 50 runs
    python benchmarks/pointcloud.py --sizes 640x480 --runs 5   # smoke
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dfdnet_core.camera import CameraIntrinsics  # noqa: E402
from dfdnet_core.pointcloud import depth_to_points, pointcloud2_fields_and_data  # noqa: E402


def _time_ms(fn: Callable[[], object], runs: int, warmup: int = 3) -> tuple[float, float]:
    """Median and minimum wall time of ``fn`` in milliseconds."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times), 1e3 * min(times)


def measure(width: int, height: int, runs: int) -> dict[str, float]:
    """Flat figures for one image size."""
    rng = np.random.default_rng(0)
    intrinsics = CameraIntrinsics.from_horizontal_fov(width, height, 60.0)
    depth = rng.uniform(0.3, 5.0, (height, width)).astype(np.float32)
    depth[rng.random((height, width)) < 0.1] = np.nan
    rgb = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    points = depth_to_points(depth, intrinsics)
    tag = f"{width}x{height}"
    out: dict[str, float] = {}
    cases: dict[str, Callable[[], object]] = {
        "backproject": lambda: depth_to_points(depth, intrinsics),
        "pack_xyz": lambda: pointcloud2_fields_and_data(points),
        "pack_xyzrgb": lambda: pointcloud2_fields_and_data(points, rgb),
        "total_xyz": lambda: pointcloud2_fields_and_data(depth_to_points(depth, intrinsics)),
        "total_xyzrgb": lambda: pointcloud2_fields_and_data(depth_to_points(depth, intrinsics), rgb),
    }
    for name, fn in cases.items():
        median_ms, min_ms = _time_ms(fn, runs)
        out[f"ms_{name}_median_{tag}"] = round(median_ms, 3)
        out[f"ms_{name}_min_{tag}"] = round(min_ms, 3)
    out[f"bytes_xyz_{tag}"] = len(pointcloud2_fields_and_data(points)[2])
    out[f"bytes_xyzrgb_{tag}"] = len(pointcloud2_fields_and_data(points, rgb)[2])
    return out


def _markdown(results: dict[str, object], sizes: list[tuple[int, int]]) -> str:
    lines = [
        "## Point cloud (depth -> PointCloud2 bytes)",
        "",
        (
            "`depth_to_points` (x = (u - cx) z / fx, y = (v - cy) z / fy) and `pointcloud2_fields_and_data` "
            "(organised, little-endian; xyz: point_step 16, xyz+rgb: point_step 32 with PCL-packed rgb at offset 16), "
            f"float32 depth with 10 % NaN. Median (min) of {results['runs']} runs, milliseconds. Machine: "
            f"{results['machine']}; load average {results['load_average_1min']} at start; {results['date']}; "
            f"command `{results['command']}`."
        ),
        "",
        "| size | back-project | pack xyz | pack xyz+rgb | total xyz | total xyz+rgb | bytes xyz / xyz+rgb |",
        "|---|---|---|---|---|---|---|",
    ]
    for width, height in sizes:
        tag = f"{width}x{height}"

        def cell(name: str, tag: str = tag) -> str:
            return f"{results[f'ms_{name}_median_{tag}']:.2f} ({results[f'ms_{name}_min_{tag}']:.2f})"

        lines.append(
            f"| {tag} | {cell('backproject')} | {cell('pack_xyz')} | {cell('pack_xyzrgb')} | {cell('total_xyz')} | "
            f"{cell('total_xyzrgb')} | {results[f'bytes_xyz_{tag}']:,} / {results[f'bytes_xyzrgb_{tag}']:,} |"
        )
    return "\n".join(lines) + "\n"


def _parse_size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"size must look like 640x480, got {text!r}") from None
    if width <= 0 or height <= 0:
        raise argparse.ArgumentTypeError(f"size must be positive, got {text!r}")
    return width, height


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table and write docs/benchmarks/pointcloud.{json,md}."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_parse_size, nargs="+", default=[(640, 480), (1280, 720)])
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--out-dir", type=Path, default=ROOT / "docs" / "benchmarks")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)

    results: dict[str, object] = {
        "machine": f"{platform.machine()}, {platform.system()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}, numpy {np.__version__}",
        "command": " ".join(["python", "benchmarks/pointcloud.py", *(sys.argv[1:] if argv is None else argv)]),
        "date": datetime.date.today().isoformat(),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "runs": args.runs,
        "depth_nan_fraction": 0.1,
    }
    for width, height in args.sizes:
        results.update(measure(width, height, args.runs))
    markdown = _markdown(results, args.sizes)
    print(markdown)
    if not args.no_write:
        args.out_dir.mkdir(parents=True, exist_ok=True)
        (args.out_dir / "pointcloud.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
        (args.out_dir / "pointcloud.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
