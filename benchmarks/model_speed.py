"""DfDNet model speed on CPU: ``tiny`` (ours) vs ``small`` (FOSSA ViT-S), PyTorch eager, fp32.

Measures, for one focal stack of N images (default 5 x 256x320): milliseconds per stack (median and
minimum over several runs after warm-up), parameter count, float32 checkpoint size and FLOPs
(counted by ``torch.utils.flop_counter.FlopCounterMode``; a multiply-add counts as 2 FLOPs).
Weights are freshly initialised; speed does not depend on their values.

Writes docs/benchmarks/model_speed.json (flat keys with units) and docs/benchmarks/model_speed.md (a
section for docs/BENCHMARKS.md), and prints both.

Run from the repository root:
    python benchmarks/model_speed.py     # defaults: tiny and small, 2 and 1 threads, 5 x 256x320
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import torch
from machine import cpu_name
from torch.utils.flop_counter import FlopCounterMode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from dfdnet_core.model import (  # noqa: E402
    DfDNet,
    config_for_size,
    count_parameters,
    network_input_size,
)


def load_average() -> float:
    try:
        return round(os.getloadavg()[0], 2)
    except OSError:
        return float("nan")


def measure(
    size: str,
    stack: int,
    height: int,
    width: int,
    threads: list[int],
    runs: int,
    warmup: int,
    min_time_s: float,
) -> dict[str, Any]:
    """Time one size at each thread count (at least ``runs`` runs and ``min_time_s`` seconds)."""
    torch.manual_seed(0)
    model = DfDNet(config_for_size(size)).eval()
    images = torch.randn(1, stack, 3, height, width)
    focus = torch.linspace(0.5, 4.0, stack)[None]
    figures: dict[str, Any] = {}
    with torch.inference_mode():
        for count in threads:
            torch.set_num_threads(count)
            for _ in range(warmup):
                model(images, focus)
            times_s: list[float] = []
            cpu_times_s: list[float] = []
            began = time.perf_counter()
            while len(times_s) < runs or time.perf_counter() - began < min_time_s:
                start, cpu_start = time.perf_counter(), time.process_time()
                model(images, focus)
                times_s.append(time.perf_counter() - start)
                cpu_times_s.append(time.process_time() - cpu_start)
            tag = f"{size}_{count}threads"
            figures[f"ms_per_stack_median_{tag}"] = round(1e3 * statistics.median(times_s), 2)
            figures[f"ms_per_stack_min_{tag}"] = round(1e3 * min(times_s), 2)
            figures[f"cpu_ms_per_stack_median_{tag}"] = round(
                1e3 * statistics.median(cpu_times_s), 2
            )
            figures[f"runs_{tag}"] = len(times_s)
        with FlopCounterMode(display=False) as counter:
            model(images, focus)
    cfg = model.config
    rows, cols = network_input_size(height, width, cfg.input_short_side_px, cfg.patch_size_px)
    params = count_parameters(model)
    figures.update(
        {
            f"params_{size}": params,
            f"checkpoint_mb_{size}": round(4 * params / 1e6, 2),
            f"gflop_per_stack_{size}": round(counter.get_total_flops() / 1e9, 3),
            f"network_input_px_{size}": f"{rows}x{cols}",
        }
    )
    return figures


def measure_shipped(
    checkpoint: Path, stack: int, height: int, width: int, threads: int, runs: int
) -> dict[str, Any]:
    """End-to-end ``infer_stack`` of a checkpoint (uint8 in, metres out) and its classical-prior share."""
    import numpy as np

    from dfdnet_core.model.checkpoint import load_model
    from dfdnet_core.model.prior import network_prior
    from dfdnet_core.optics import LensOptics

    torch.set_num_threads(threads)
    model = load_model(checkpoint).eval()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (stack, height, width, 3), dtype=np.uint8)
    focus_m = np.linspace(0.5, 4.0, stack)
    pitch_m = 0.036 / width  # 36 mm sensor width, focal length = width in pixels, f/1.4
    optics = LensOptics(pitch_m * width, 1.4, pitch_m)
    total_s, prior_s = [], []
    for k in range(runs + 2):
        start = time.perf_counter()
        model.infer_stack(images, focus_m, focal_length_px=float(width), optics=optics)
        middle = time.perf_counter()
        if model.config.depth_prior != "none":
            network_prior(images, focus_m, 1.0)  # what infer_stack computes before the network
        end = time.perf_counter()
        if k >= 2:
            total_s.append(middle - start)
            prior_s.append(end - middle)
    tag = f"shipped_{threads}threads"
    total_ms = 1e3 * statistics.median(total_s)
    prior_ms = 1e3 * statistics.median(prior_s)
    return {
        f"ms_per_stack_median_end_to_end_{tag}": round(total_ms, 2),
        f"ms_prior_and_sharpness_median_{tag}": round(prior_ms, 2),
        f"ms_network_median_{tag}": round(total_ms - prior_ms, 2),
        "shipped_checkpoint": str(checkpoint.relative_to(ROOT) if checkpoint.is_relative_to(ROOT) else checkpoint),
        "shipped_depth_prior": model.config.depth_prior,
        "shipped_input_short_side_px": model.config.input_short_side_px,
        "params_shipped": count_parameters(model),
    }


def markdown(result: dict[str, Any], sizes: list[str], threads: list[int]) -> str:
    """The BENCHMARKS.md section."""
    a, b = sizes[0], sizes[-1]
    rows: list[tuple[str, str]] = []
    for count in threads:
        unit = "thread" if count == 1 else "threads"
        rows += [
            (f"ms per stack, median, {count} {unit}", f"ms_per_stack_median_{{}}_{count}threads"),
            (f"ms per stack, min, {count} {unit}", f"ms_per_stack_min_{{}}_{count}threads"),
            (
                f"CPU ms per stack, median, {count} {unit}",
                f"cpu_ms_per_stack_median_{{}}_{count}threads",
            ),
            (f"timed runs, {count} {unit}", f"runs_{{}}_{count}threads"),
        ]
    rows += [
        ("GFLOP per stack", "gflop_per_stack_{}"),
        ("parameters", "params_{}"),
        ("float32 checkpoint (MB)", "checkpoint_mb_{}"),
        ("network input (px)", "network_input_px_{}"),
    ]
    header = "| | " + " | ".join(sizes) + (f" | {b} / {a} |" if len(sizes) == 2 else " |")
    thread_list = " and ".join(f"`torch.set_num_threads({c})`" for c in threads)
    lines = [
        "## Model speed (PyTorch eager, CPU)",
        "",
        f"One stack of {result['stack_size']} x "
        f"{result['input_height_px']}x{result['input_width_px']} px, float32, {thread_list}, "
        "batch 1, random weights; median and minimum of several runs after warm-up. CPU ms = "
        "process CPU time (all threads). FLOPs from `FlopCounterMode` (multiply-add = 2).",
        "",
        header,
        "|---" * (len(sizes) + 1 + (len(sizes) == 2)) + "|",
    ]
    for label, key in rows:
        values = [result[key.format(s)] for s in sizes]
        cells = [f"{v:,}" if isinstance(v, int) else str(v) for v in values]
        ratio = ""
        if len(sizes) == 2 and "runs" not in key:
            numeric = all(isinstance(v, (int, float)) for v in values)
            ratio = f" | {values[1] / values[0]:.1f}x" if numeric else " | "
        elif len(sizes) == 2:
            ratio = " | "
        lines.append(f"| {label} | " + " | ".join(cells) + ratio + " |")
    if "shipped_checkpoint" in result:
        count = threads[0]
        tag = f"shipped_{count}threads"
        lines += [
            "",
            f"The shipped model (`{result['shipped_checkpoint']}`, depth prior "
            f"`{result['shipped_depth_prior']}`, network short side {result['shipped_input_short_side_px']} px, "
            f"{result['params_shipped']:,} parameters), end to end through `infer_stack` (uint8 images in, "
            f"metres out) on the same {result['stack_size']} x {result['input_height_px']}x"
            f"{result['input_width_px']} stack, {count} threads:",
            "",
            "| | ms per stack, median |",
            "|---|---|",
            f"| end to end | {result[f'ms_per_stack_median_end_to_end_{tag}']} |",
            f"| of which classical prior + sharpness (numpy/OpenCV) | "
            f"{result[f'ms_prior_and_sharpness_median_{tag}']} |",
            f"| of which network and the rest | {result[f'ms_network_median_{tag}']} |",
        ]
    lines += [
        "",
        f"Machine: {result['machine']}; torch {result['torch_version']}; load average "
        f"{result['load_average_start']} at start, {result['load_average_end']} at end. Other "
        "jobs may share the CPU: with one core busy, 2 threads stall at every operator's barrier "
        "(many small operators hurt `tiny` most), and 1 thread is the fairer figure; on an idle "
        f"machine the 2-thread minimum is. Date: {result['date']}. Command: `{result['command']}`.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", nargs="+", default=["tiny", "small"], help="model sizes to time")
    parser.add_argument("--stack", type=int, default=5, help="images per stack N")
    parser.add_argument("--height", type=int, default=256, help="image height in pixels")
    parser.add_argument("--width", type=int, default=320, help="image width in pixels")
    parser.add_argument(
        "--threads", type=int, nargs="+", default=[2, 1], help="torch CPU thread counts to time"
    )
    parser.add_argument("--runs", type=int, default=7, help="timed runs per size")
    parser.add_argument("--warmup", type=int, default=2, help="untimed runs per size")
    parser.add_argument(
        "--min-time-s", type=float, default=10.0, help="keep timing a size for at least this long"
    )
    parser.add_argument(
        "--shipped",
        type=Path,
        default=ROOT / "models" / "dfdnet_tiny.safetensors",
        help="also time this checkpoint end to end (skipped when the file is missing)",
    )
    parser.add_argument(
        "--out-dir", type=Path, default=ROOT / "docs" / "benchmarks", help="where JSON/MD go"
    )
    args = parser.parse_args(argv)

    result: dict[str, Any] = {
        "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs",
        "command": " ".join(
            ["python", "benchmarks/model_speed.py", *(shlex.quote(a) for a in argv or sys.argv[1:])]
        ),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch_version": torch.__version__,
        "threads": " ".join(str(c) for c in args.threads),
        "precision": "float32",
        "stack_size": args.stack,
        "input_height_px": args.height,
        "input_width_px": args.width,
        "load_average_start": load_average(),
    }
    for size in args.sizes:
        print(f"timing {size} ...", flush=True)
        result.update(
            measure(
                size,
                args.stack,
                args.height,
                args.width,
                args.threads,
                args.runs,
                args.warmup,
                args.min_time_s,
            )
        )
    if args.shipped.is_file():
        print(f"timing {args.shipped} end to end ...", flush=True)
        result.update(
            measure_shipped(args.shipped, args.stack, args.height, args.width, args.threads[0], args.runs)
        )
    result["load_average_end"] = load_average()
    if len(args.sizes) == 2:
        a, b = args.sizes
        keys = [f"ms_per_stack_median_{{}}_{c}threads" for c in args.threads]
        keys += ["gflop_per_stack_{}", "params_{}"]
        for key in keys:
            name = key.replace("_{}", "")
            result[f"ratio_{name}_{b}_over_{a}"] = round(
                result[key.format(b)] / result[key.format(a)], 2
            )

    text = markdown(result, args.sizes, args.threads)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    (args.out_dir / "model_speed.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / "model_speed.md").write_text(text)
    print(text)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
