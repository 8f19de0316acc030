"""Focal-stack renderer speed: our gather mode vs a straightforward port of the per-pixel gather kernel.

The reference computes what the published CUDA kernels compute, the way a plain PyTorch port of them would:
for every window offset (a Python loop, as the CUDA thread loops over its window), weight every pixel's
neighbour by the OUTPUT pixel's PSF ``exp(-2 r^2 / c^2)``, accumulate, and normalise; only the per-pixel
thread loop is vectorised. Ours builds a bank of constant-CoC separable blurs shared by the stack and
interpolates it (dfdnet_core.renderer). Both use the same window (PSF below 1e-4 outside), the same
scene and the same 5 focus distances; they must agree within 1e-3 (max abs, images in [0, 1]).

The reference's cost is exactly proportional to the pixel count, so by default it is timed on a centre crop
(1/4 of the pixels) and scaled; pass ``--reference-crop 1`` to time it on the full image. Agreement is checked
on the crop, where both run on identical input.

Usage: PYTHONPATH=. python benchmarks/renderer.py [--threads 2] [--repeats 3] [--reference-crop 4]
Writes docs/benchmarks/renderer.json and docs/benchmarks/renderer.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
from machine import cpu_name

from dfdnet_core.camera import CameraIntrinsics
from dfdnet_core.optics import LensOptics, disparity_uniform_focus_m
from dfdnet_core.renderer import psf_window_radius_px, render_focal_stack
from dfdnet_core.scene import make_scene

ROOT = Path(__file__).resolve().parents[1]
WIDTH_PX, HEIGHT_PX = 640, 480
INTRINSICS = CameraIntrinsics(WIDTH_PX, HEIGHT_PX, 1333.3, 1333.3, 319.5, 239.5)
OPTICS = LensOptics(focal_length_m=0.008, f_number=1.4, pixel_pitch_m=6e-6)
FOCUS_M = disparity_uniform_focus_m(0.4, 2.0, 5)
TOLERANCE = 1e-3


def reference_gather(image: torch.Tensor, coc_px: torch.Tensor, radius: int) -> torch.Tensor:
    """Naive port of the per-pixel gather: loop over the window, weight by the output pixel's PSF, normalise.

    Args:
        image: (3, H, W) float32 in [0, 1].
        coc_px: (N, H, W) CoC radius of every output pixel, per slice.
        radius: window half-size in pixels.

    Returns:
        (N, 3, H, W) float32.
    """
    n, h, w = coc_px.shape
    padded = torch.nn.functional.pad(image, (radius, radius, radius, radius))
    inside = torch.nn.functional.pad(torch.ones((1, h, w)), (radius, radius, radius, radius))
    inv_c2 = 1.0 / coc_px.clamp_min(1e-12).pow(2)[:, None]  # (N, 1, H, W)
    num = torch.zeros((n, 3, h, w))
    den = torch.zeros((n, 1, h, w))
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            weight = torch.exp(-2.0 * (dy * dy + dx * dx) * inv_c2)
            weight = weight * inside[:, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            num += weight * padded[:, radius + dy : radius + dy + h, radius + dx : radius + dx + w]
            den += weight
    return num / den


def _timed(fn: Callable[[], object], repeats: int) -> tuple[float, float, object]:
    """Best wall time and the CPU time of that run, in seconds, and the last result."""
    best_wall, best_cpu, result = math.inf, math.inf, None
    for _ in range(repeats):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = fn()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        if wall < best_wall:
            best_wall, best_cpu = wall, cpu
    return best_wall, best_cpu, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads (default 2)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of our renderer; the best is kept")
    parser.add_argument("--reference-crop", type=int, default=4, choices=(1, 2, 4, 8),
                        help="time the reference on 1/k of the pixels (centre crop) and scale by k")
    parser.add_argument("--no-write", action="store_true", help="print only; do not write docs/benchmarks/")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()[0]

    scene = make_scene(WIDTH_PX, HEIGHT_PX, INTRINSICS, depth_range_m=(0.45, 1.9), seed=0)
    rgb = torch.from_numpy(scene.rgb).permute(2, 0, 1)[None].float() / 255.0
    depth = torch.from_numpy(scene.depth_m)[None, None]
    focus = torch.tensor([FOCUS_M])
    n = focus.shape[1]
    render_focal_stack(rgb[..., :64, :64], depth[..., :64, :64], focus, OPTICS)  # warm up

    wall_g, cpu_g, res = _timed(lambda: render_focal_stack(rgb, depth, focus, OPTICS, mode="gather"), args.repeats)
    assert res is not None
    coc = res.coc_radius_px[0, :, 0]  # type: ignore[attr-defined]
    radius = psf_window_radius_px(float(coc.max()), 2.0)
    wall_l, cpu_l, _ = _timed(lambda: render_focal_stack(rgb, depth, focus, OPTICS, mode="layered"), args.repeats)
    wall_f, cpu_f, _ = _timed(
        lambda: render_focal_stack(
            rgb, depth, focus, OPTICS, mode="gather", gather_weights="neighbour", window_radius_px=7
        ),
        1,
    )

    # Reference on a centre crop with 1/k of the pixels; ours on the same crop for the agreement check.
    k = args.reference_crop
    side = {1: (1, 1), 2: (1, 2), 4: (2, 2), 8: (2, 4)}[k]
    ch, cw = HEIGHT_PX // side[0], WIDTH_PX // side[1]
    y0, x0 = (HEIGHT_PX - ch) // 2, (WIDTH_PX - cw) // 2
    crop = (..., slice(y0, y0 + ch), slice(x0, x0 + cw))
    ours_crop = render_focal_stack(rgb[crop], depth[crop], focus, OPTICS, mode="gather", window_radius_px=radius)
    wall_r, cpu_r, ref = _timed(lambda: reference_gather(rgb[0][crop], ours_crop.coc_radius_px[0, :, 0], radius), 1)
    assert isinstance(ref, torch.Tensor)
    max_diff = float((ours_crop.stack[0] - ref.clamp(0.0, 1.0)).abs().max())
    wall_r_full, cpu_r_full = wall_r * k, cpu_r * k

    results = {
        "device": "cpu",
        "threads": args.threads,
        "image_px": f"{HEIGHT_PX}x{WIDTH_PX}",
        "stack_size": n,
        "precision": "float32",
        "focus_distances_m": [round(f, 4) for f in FOCUS_M],
        "f_number": OPTICS.f_number,
        "max_coc_radius_px": round(float(coc.max()), 3),
        "window_radius_px": radius,
        "ms_per_stack_gather": round(1e3 * wall_g, 1),
        "cpu_ms_per_stack_gather": round(1e3 * cpu_g, 1),
        "ms_per_stack_layered": round(1e3 * wall_l, 1),
        "cpu_ms_per_stack_layered": round(1e3 * cpu_l, 1),
        "ms_per_stack_gather_fossa_neighbour_15x15": round(1e3 * wall_f, 1),
        "cpu_ms_per_stack_gather_fossa_neighbour_15x15": round(1e3 * cpu_f, 1),
        "ms_per_stack_gather_reference": round(1e3 * wall_r_full, 1),
        "cpu_ms_per_stack_gather_reference": round(1e3 * cpu_r_full, 1),
        "reference_timed_on_px": f"{ch}x{cw}",
        "reference_scale_factor": k,
        "speedup_gather_vs_reference_wall": round(wall_r_full / wall_g, 1),
        "speedup_gather_vs_reference_cpu": round(cpu_r_full / cpu_g, 1),
        "max_abs_diff_gather_vs_reference": float(f"{max_diff:.3g}"),
        "slices_per_s_gather": round(n / wall_g, 2),
        "slices_per_s_layered": round(n / wall_l, 2),
        "slices_per_s_gather_fossa_neighbour_15x15": round(n / wall_f, 2),
        "load_average_1min_at_start": round(load_before, 2),
        "machine": f"{cpu_name()}, {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
        f"Python {platform.python_version()}",
        "command": " ".join(
            ["PYTHONPATH=. python benchmarks/renderer.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }

    rows = [
        ("gather, reference port (per-offset loop)", wall_r_full, cpu_r_full, f"timed on {ch}x{cw}, x{k}"),
        ("gather, dfdnet (kernel bank)", wall_g, cpu_g, f"{wall_r_full / wall_g:.1f}x faster (wall)"),
        ("layered (occlusion-aware), dfdnet", wall_l, cpu_l, "default of the simulated camera"),
        ("gather, FOSSA neighbour weights, dfdnet", wall_f, cpu_f, "`gather_weights='neighbour'`, 15x15, 1 run"),
    ]
    table = [
        "| renderer | ms / stack (wall) | ms / stack (CPU) | slices/s | note |",
        "|---|---:|---:|---:|---|",
    ]
    table += [f"| {name} | {1e3 * w:.0f} | {1e3 * c:.0f} | {n / w:.2f} | {note} |" for name, w, c, note in rows]
    focus_text = ", ".join(f"{f:.3g}" for f in FOCUS_M)
    setup = (
        f"{n}-slice stack at {HEIGHT_PX}x{WIDTH_PX}, float32, {args.threads} torch threads, procedural scene "
        f"(seed 0, depths 0.45-1.9 m), f = 8 mm, f/1.4, 6 um pixels, focus {focus_text} m; largest CoC radius "
        f"{float(coc.max()):.2f} px, window radius {radius} px (Gaussian PSF, sigma = CoC radius / 2)."
    )
    agreement = (
        f"Gather agrees with the reference within {max_diff:.1e} (max abs, [0, 1] images; limit {TOLERANCE:g}). "
        f"Speed-up {wall_r_full / wall_g:.1f}x wall, {cpu_r_full / cpu_g:.1f}x CPU time."
    )
    machine = (
        f"Machine: {results['machine']}; 1-min load average at start {load_before:.2f} "
        "(shared machine: wall times are the best of the repeats)."
    )
    md = "\n".join(
        ["## Focal-stack renderer (CPU)", "", setup, "", *table, "", agreement, machine,
         f"Command: `{results['command']}`", ""]
    )
    print(md)
    if not args.no_write:
        out_dir = ROOT / "docs" / "benchmarks"
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "renderer.json").write_text(json.dumps(results, indent=2) + "\n")
        (out_dir / "renderer.md").write_text(md)
        print(f"wrote {out_dir / 'renderer.json'} and {out_dir / 'renderer.md'}")
    if max_diff > TOLERANCE:
        print(f"FAIL: gather differs from the reference by {max_diff:.3g} > {TOLERANCE:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
