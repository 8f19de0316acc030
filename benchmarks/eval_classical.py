"""Depth metrics of the estimators on focal stacks rendered from real RGB-D photographs (issue 3).

Protocol (FOSSA's synthetic-blur protocol for iBims-1): f/1.4, 5 slices, "adaptive" focus distances uniform in
disparity between the 5 % and 95 % quantiles of each scene's ground-truth disparity, gather renderer with the
Gaussian PSF (sigma = CoC radius / 2), holes rendered at 1000 m and not scored. Every estimator in
:data:`ESTIMATORS` runs on the same uint8 stacks (each rendered once).

Data (``/work/shared/data``, read-only):

* Middlebury 2014 Motorcycle (quarter resolution, 741x497, native size): FOSSA's lens convention, the 36 mm
  sensor across the long edge and f = pitch x fx = 48.6 mm (fx = 999.4 px).
* DFD-indoor, the 81 train scenes (f/8 image + Kinect depth, 645x432): the data set publishes no intrinsics, so
  we use its own published simulation lens, f = 35 mm with a 36 um pixel pitch at 645 px (a 23.2 mm long edge: the
  APS-C DSLR it was shot with). Shrunk to 320 px on the long side (pitch 72.6 um) so that the run takes a few
  minutes on 2 CPU cores; the optics are unchanged, only the sampling is coarser.

Usage: ``PYTHONPATH=. python benchmarks/eval_classical.py [--data /work/shared/data] [--dfd-max-side 320]
[--limit N] [--checkpoint PATH] [--panels-dir out/eval_classical]``. ``--checkpoint`` adds the learned model
("torch" back end) beside the classical one. Writes docs/benchmarks/eval_classical.json and .md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from machine import cpu_name

from dfdnet_core.data.registry import open_dataset
from dfdnet_core.estimator import DepthEstimator, make_estimator
from dfdnet_core.evaluation import EvalConfig, RenderProtocol, evaluate, metrics_table
from dfdnet_core.metrics import METRIC_KEYS

#: (label, factory) of every estimator in the table; issue 4 adds the learned model here (or via --checkpoint).
ESTIMATORS: list[tuple[str, Callable[[], DepthEstimator]]] = [("classical", lambda: make_estimator("classical"))]

PROTOCOL = RenderProtocol(f_number=1.4, n_slices=5)  # adaptive 5-95 % focus, gather, Gaussian PSF, 36 mm


@dataclass(frozen=True)
class BenchSet:
    """One data set of the benchmark and how its stacks are rendered."""

    key: str
    title: str
    dataset: str
    root: str
    lens: str
    config: EvalConfig
    options: dict[str, Any] = field(default_factory=dict)


def bench_sets(dfd_max_side_px: int | None) -> list[BenchSet]:
    """The benchmark's data sets (roots relative to ``--data``)."""
    dfd_lens = RenderProtocol(f_number=1.4, n_slices=5, focal_length_m=0.035, sensor_width_m=645 * 36e-6)
    return [
        BenchSet("middlebury_motorcycle", "Middlebury 2014 Motorcycle", "middlebury2014", "middlebury_motorcycle",
                 "36 mm sensor convention, f = pitch x fx = 48.6 mm", EvalConfig(render=PROTOCOL, panels=1)),
        BenchSet("dfd_indoor_train", "DFD-indoor train (81 scenes, f/8 + depth)", "dfd_indoor", "dfd_indoor",
                 "f = 35 mm, 36 um pitch at 645 px (data set's simulation lens)",
                 EvalConfig(render=dfd_lens, max_side_px=dfd_max_side_px, panels=2),
                 {"variant": "N8", "split": "train"}),
    ]


def _machine() -> str:
    return (f"{cpu_name()}, {os.cpu_count()} CPUs, torch {torch.__version__} with {torch.get_num_threads()} threads, "
            f"Python {platform.python_version()}, {platform.system()}")


def run_set(bench: BenchSet, data_root: Path, estimators: dict[str, DepthEstimator], limit: int | None,
            panels_dir: Path | None) -> dict[str, Any]:
    """Render every sample of one set once, run every estimator; returns flat results of this set."""
    dataset = open_dataset(bench.dataset, data_root / bench.root, **bench.options)
    count = len(dataset) if limit is None else min(limit, len(dataset))
    out_dir = None if panels_dir is None else panels_dir / bench.key
    samples = (dataset[i] for i in range(count))  # each rendered once (timed as prepare_s), seen by every estimator
    report = evaluate(estimators, samples, bench.config, out_dir, dataset=bench.title, total=count)
    first = report.samples[0]
    h, w = first["size_px"]
    flat: dict[str, Any] = {
        f"{bench.key}_samples": count,
        f"{bench.key}_size_px": f"{w}x{h}",
        f"{bench.key}_focal_length_mm": round(first["focal_length_m"] * 1e3, 3),
        f"{bench.key}_pixel_pitch_um": round(first["pixel_pitch_m"] * 1e6, 3),
        f"{bench.key}_lens": bench.lens,
        f"{bench.key}_ms_per_stack_render": 1e3 * sum(s["prepare_s"] for s in report.samples) / count,
    }
    rows = []
    for label in estimators:
        mean = report.means(label)["depth"]
        rows.append((bench.title, label, "depth", mean))
        per_stack_s = [s["estimators"][label]["estimate_s"] for s in report.samples]
        flat[f"{bench.key}_{label}_ms_per_stack"] = 1e3 * sum(per_stack_s) / len(per_stack_s)
        for key in METRIC_KEYS + ("pixel_coverage",):
            if key in ("valid_px", "evaluated_px"):
                continue
            unit = "_m" if key in ("rmse", "sq_rel") else "_m2" if key == "mse" else ""
            name = re.sub(r"[^a-z0-9]+", "_", key.replace("^", "_pow"))
            flat[f"{bench.key}_{label}_{name}{unit}"] = mean[key]
    return {"flat": flat, "rows": rows, "size": f"{w}x{h}", "count": count}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data"), help="the shared data folder")
    parser.add_argument("--dfd-max-side", type=int, default=320, help="long side of DFD-indoor images, px")
    parser.add_argument("--limit", type=int, default=None, help="first LIMIT samples of each set (smoke runs)")
    parser.add_argument("--checkpoint", type=Path, default=None, help="add the torch back end with this checkpoint")
    parser.add_argument("--panels-dir", type=Path, default=None, help="write PNG panels and per-set reports here")
    parser.add_argument("--out", type=Path, default=Path("docs/benchmarks"), help="folder for the JSON and MD")
    args = parser.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    estimators = {label: factory() for label, factory in ESTIMATORS}
    if args.checkpoint is not None:
        estimators["torch"] = make_estimator("torch", checkpoint_path=str(args.checkpoint))
    start = time.perf_counter()
    results = [run_set(b, args.data, estimators, args.limit, args.panels_dir) for b in bench_sets(args.dfd_max_side)]
    wall_s = time.perf_counter() - start
    command = "PYTHONPATH=. python benchmarks/eval_classical.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    date = datetime.date.today().isoformat()
    doc: dict[str, Any] = {"command": command, "date": date, "machine": _machine(), "wall_s": wall_s,
                           "estimators": ", ".join(estimators), "f_number": PROTOCOL.f_number,
                           "n_slices": PROTOCOL.n_slices, "focus": "adaptive: uniform in 1/d, 5-95 % GT quantiles",
                           "render": "gather, Gaussian PSF sigma = CoC radius / 2, holes at 1000 m, uint8 stacks"}
    for res in results:
        doc.update(res["flat"])
    table = metrics_table([row for res in results for row in res["rows"]])
    sets = bench_sets(args.dfd_max_side)
    lines = [
        "## Depth from focus on rendered stacks (classical baseline)", "",
        ("Focal stacks rendered from real RGB-D photographs with dfdnet's thin-lens renderer (gather mode, Gaussian "
         "PSF with sigma = CoC radius / 2, holes at 1000 m and not scored), f/1.4, 5 slices, adaptive focus "
         "distances (uniform in disparity between the 5 % and 95 % quantiles of each scene's ground-truth "
         "disparity, FOSSA's iBims-1 protocol). Metrics in metres over the pixels the estimator returns a depth "
         "for (`coverage` = that fraction of the valid ground truth); per-image means."), "",
    ]
    for bench, res in zip(sets, results, strict=True):
        ms = res["flat"]
        lines.append(f"- **{bench.title}**: {res['count']} scene(s) at {res['size']} px; lens {bench.lens} "
                     f"(here f = {ms[bench.key + '_focal_length_mm']} mm, pitch {ms[bench.key + '_pixel_pitch_um']} "
                     f"um); render {ms[bench.key + '_ms_per_stack_render']:.0f} ms/stack.")
    lines += ["", table, f"Machine: {doc['machine']}; {date}; total {wall_s:.0f} s; command `{command}`.", ""]
    md = "\n".join(lines)
    print(md)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_classical.json").write_text(json.dumps(doc, indent=2, sort_keys=True, allow_nan=False) + "\n")
    (args.out / "eval_classical.md").write_text(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
