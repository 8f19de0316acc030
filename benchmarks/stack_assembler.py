"""Benchmark of dfdnet_core.stack_assembler: CPU time per camera frame, per-sweep and rolling, at camera sizes.

A simulated 30 fps camera and a 5-distance ping-pong sweep (one lens step per 2 frames: 10 ms settle, then both
frames of the step are settled) are fed through :class:`StackAssembler`; we time every ``add_frame`` and
``add_lens_state`` call (pairing, colour conversion, and the (N, H, W, 3) copy of each emitted stack).

Usage: ``python benchmarks/stack_assembler.py [--frames 600] [--sizes 640x480,1280x720,1920x1080]``.
Writes docs/benchmarks/stack_assembler.json and docs/benchmarks/stack_assembler.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from dfdnet_core.stack_assembler import FrameSample, LensStateSample, StackAssembler, StackAssemblerConfig
from dfdnet_core.sweep import SweepConfig, SweepPlanner

PERIOD_NS = 33_333_333
SETTLE_NS = 10_000_000


def run_case(width: int, height: int, encoding: str, rolling: bool, n_frames: int) -> dict[str, float]:
    """Feed ``n_frames`` frames; returns timings in ms and the number of stacks."""
    planner = SweepPlanner(SweepConfig(near_m=0.5, far_m=3.0, n_focus=5))
    asm = StackAssembler(StackAssemblerConfig(rolling=rolling))
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (height, width, 3), dtype=np.uint8) for _ in range(4)]
    frame_s: list[float] = []
    lens_s: list[float] = []
    emit_s: list[float] = []
    stacks = 0
    for k in range(n_frames):
        t = k * PERIOD_NS
        if k % 2 == 0:
            step = planner.next_step()
            for stamp, settled in ((t, False), (t + SETTLE_NS, True)):
                state = LensStateSample(stamp, step.focus_m, step.power_diopt, settled, step.sweep_id, step.index,
                                        step.length)
                t0 = time.perf_counter()
                out = asm.add_lens_state(state)
                dt = time.perf_counter() - t0
                (emit_s if out else lens_s).append(dt)
                stacks += len(out)
        sample = FrameSample(t + 15_000_000, images[k % 4], encoding, "cam")
        t0 = time.perf_counter()
        out = asm.add_frame(sample)
        frame_s.append(time.perf_counter() - t0)
        stacks += len(out)
    total_s = sum(frame_s) + sum(lens_s) + sum(emit_s)
    return {
        "ms_per_frame_add": 1e3 * float(np.mean(frame_s)),
        "ms_per_lens_state_no_stack": 1e3 * float(np.mean(lens_s)) if lens_s else 0.0,
        "ms_per_lens_state_with_stack": 1e3 * float(np.mean(emit_s)) if emit_s else 0.0,
        "ms_cpu_per_camera_frame": 1e3 * total_s / n_frames,
        "stacks_out": float(stacks),
        "frames_dropped": float(sum(asm.drops.values())),  # here: the older of the 2 frames per step (superseded)
    }


def _cpu_count() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a table, write JSON and Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="camera frames per case (default 600 = 20 s)")
    parser.add_argument("--sizes", default="640x480,1280x720,1920x1080", help="comma-separated WxH list")
    parser.add_argument("--out", default="docs/benchmarks", help="folder for the JSON and Markdown results")
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    results: dict[str, object] = {}
    rows = []
    for width, height in sizes:
        for encoding in ("rgb8", "bgr8"):
            for rolling in (False, True):
                r = run_case(width, height, encoding, rolling, args.frames)
                mode = "rolling" if rolling else "per_sweep"
                key = f"{width}x{height}_{encoding}_{mode}"
                for name, value in r.items():
                    results[f"{name}_{key}"] = round(value, 4)
                rows.append((f"{width}x{height}", encoding, mode, r))
    results.update(
        machine=f"{platform.machine()}, {platform.system()}, {_cpu_count()} CPUs, Python {platform.python_version()}",
        command="python " + " ".join(sys.argv),
        date=datetime.date.today().isoformat(),
        stack_size=5,
        camera_fps=30,
        frames_per_case=args.frames,
    )
    header = "| size | encoding | mode | stacks | ms/frame add | ms/lens state (emits) | CPU ms per camera frame |"
    lines = [
        "## Stack assembler (stack_buffer core)",
        "",
        f"30 fps camera, 5-distance ping-pong sweep (2 frames per step, 10 ms settle), {args.frames} frames per "
        f"case; CPU time of `StackAssembler` calls only (pairing, colour conversion, stack copy). Machine: "
        f"{results['machine']}; {results['date']}; command `{results['command']}`.",
        "",
        header,
        "|---|---|---|---|---|---|---|",
    ]
    for size, encoding, mode, r in rows:
        lines.append(
            f"| {size} | {encoding} | {mode} | {int(r['stacks_out'])} | {r['ms_per_frame_add']:.3f} | "
            f"{r['ms_per_lens_state_with_stack']:.3f} | {r['ms_cpu_per_camera_frame']:.3f} |"
        )
    markdown = "\n".join(lines) + "\n"
    print(markdown)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "stack_assembler.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (out / "stack_assembler.md").write_text(markdown)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
