"""Benchmark of the simulated pipeline (all nodes in one process, as `dfdnet run`): per-sweep vs rolling stacks.

The four nodes of the ``sim`` setup (sim_camera 640x480 at 30 fps, focus_sweep_controller with 5 focus distances,
stack_buffer, dfd_inference with the classical back end), with the parameters of config/dfd_sim.yaml, run in one
process with dfd_inference in its own thread and executor, as ``dfdnet run --sim`` runs them (and, for
comparison, all in one rclpy MultiThreadedExecutor), plus a probe node subscribed to
/dfd/depth. Two runs, one after the other in this one invocation: stack_buffer ``rolling=False`` (one stack per
sweep) and ``rolling=True`` (a stack on every newly paired frame after the first sweep). Each run warms up until
the first depth image arrives (the simulated camera renders each focus distance once) plus a few seconds, then
measures for ``--seconds``:

* depth images per second arriving at the probe, and their ratio rolling / per-sweep;
* frame-to-depth latency: arrival time at the probe minus the depth's stamp, which is the exposure start of the
  newest frame in its stack (median and 90th percentile); it includes the simulated camera's readout wait
  (a frame is published once a later lens state proves where the lens was, at most max_readout_latency_s);
* dropped-frame fraction: frames stack_buffer counted as dropped (all reasons; "superseded" = an older frame of the
  same focus step replaced before use) over frames it received, from its diagnostics counters;
* stacks stack_buffer published per second, the rate the camera actually delivered, and the back end's time.

It also times the conversion of a 640x480 depth image into a PointCloud2 message
(``depth_to_points`` + ``dfdnet_ros.conversions.pointcloud_msg``), with and without rgb.

Usage (from the repository root, in the built workspace): ``tools/in_env.sh python benchmarks/pipeline.py
[--seconds 30] [--profile]``. Writes docs/benchmarks/pipeline.json and docs/benchmarks/pipeline.md.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MODES = ("per_sweep", "rolling")
LAYOUTS = {"split": "", "multi": "_multi_executor"}  # executor layout -> suffix of its keys


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def _snapshot(nodes: dict[str, Any]) -> dict[str, float]:
    """The counters the figures are differences of."""
    buffer, camera, inference = nodes["stack_buffer"], nodes["sim_camera"], nodes["dfd_inference"]
    drops = buffer.diagnostics.total_drops()
    frame_drops = {k: v for k, v in drops.items() if not k.startswith("lens_state.") and k != "bad_camera_info"}
    snap = {
        "camera_frames": float(camera.diagnostics.counters["frames"]),
        "buffer_frames": float(buffer.diagnostics.counters["frames"]),
        "buffer_stacks": float(buffer.diagnostics.counters["stacks"]),
        "buffer_frame_drops": float(sum(frame_drops.values())),
        "inference_stacks": float(inference.diagnostics.counters["stacks"]),
        "inference_drops": float(sum(inference.diagnostics.total_drops().values())),
    }
    snap |= {f"drop.{k}": float(v) for k, v in frame_drops.items()}
    return snap


def _executors(layout: str, nodes: dict[str, Any], probe: Any, context: Any) -> tuple[Any, list[tuple[Any, Any]]]:
    """The executor spun in this thread, and (executor, thread) pairs spinning in the background.

    ``multi``: one MultiThreadedExecutor with 4 threads for every node (for comparison).
    ``split``: a SingleThreadedExecutor for camera, controller, buffer and probe in this thread, and a second one in
    its own thread for dfd_inference, so the back end's long callbacks do not hold up the others.
    """
    from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor

    if layout == "multi":
        executor = MultiThreadedExecutor(num_threads=4, context=context)
        for node in [*nodes.values(), probe]:
            executor.add_node(node)
        return executor, []
    if layout != "split":
        raise ValueError(f"executor layout must be 'multi' or 'split', got {layout!r}")
    main = SingleThreadedExecutor(context=context)
    for name, node in nodes.items():
        if name != "dfd_inference":
            main.add_node(node)
    main.add_node(probe)
    side = SingleThreadedExecutor(context=context)
    side.add_node(nodes["dfd_inference"])
    thread = threading.Thread(target=side.spin, name="dfd_inference", daemon=True)
    thread.start()
    return main, [(side, thread)]


def run_mode(mode: str, seconds: float, warmup_s: float, params_file: Path, layout: str = "split") -> dict[str, float]:
    """Run the sim pipeline in one mode; returns flat figures (units in the keys)."""
    import rclpy
    from sensor_msgs.msg import Image

    from dfdnet_ros.conversions import time_to_ns
    from dfdnet_ros.runner import make_nodes

    context = rclpy.Context()
    rclpy.init(args=["bench", "--ros-args", "--params-file", str(params_file), "--log-level", "error"],
               context=context)
    arrivals: list[tuple[float, float]] = []  # (monotonic arrival s, frame-to-depth latency s)
    lock = threading.Lock()
    ms_per_stack: list[float] = []
    try:
        overrides = {"stack_buffer": {"rolling": mode == "rolling"}}
        nodes = {n.get_name(): n for n in make_nodes("sim", overrides, context=context)}
        assert nodes["stack_buffer"].config.rolling == (mode == "rolling")
        probe = rclpy.create_node("bench_probe", context=context)
        clock = probe.get_clock()

        def on_depth(msg: Image) -> None:
            latency_s = (clock.now().nanoseconds - time_to_ns(msg.header.stamp)) * 1e-9
            with lock:
                arrivals.append((time.monotonic(), latency_s))

        probe.create_subscription(Image, "/dfd/depth", on_depth, 10)
        executor, background = _executors(layout, nodes, probe, context)

        def spin_for(duration_s: float, until: Any = None) -> None:
            end = time.monotonic() + duration_s
            while time.monotonic() < end and not (until and until()):
                executor.spin_once(timeout_sec=0.05)

        start = time.monotonic()
        spin_for(180.0, until=lambda: len(arrivals) > 0)
        if not arrivals:
            raise RuntimeError(f"{mode}: no depth image within 180 s")
        first_depth_s = time.monotonic() - start
        spin_for(warmup_s)
        print(f"pipeline: {mode}: first depth after {first_depth_s:.1f} s; measuring {seconds:.0f} s", flush=True)
        load_1min = os.getloadavg()[0]
        before, t0, cpu0 = _snapshot(nodes), time.monotonic(), time.process_time()
        with lock:
            n0 = len(arrivals)
        inference = nodes["dfd_inference"]
        end, spins = t0 + seconds, 0
        while time.monotonic() < end:
            executor.spin_once(timeout_sec=0.05)
            spins += 1
            value = inference.diagnostics.values.get("ms_per_stack")
            if value is not None and (not ms_per_stack or value != ms_per_stack[-1]):
                ms_per_stack.append(float(value))
        elapsed_s, cpu_s = time.monotonic() - t0, time.process_time() - cpu0
        after = _snapshot(nodes)
        with lock:
            window = arrivals[n0:]
        for ex, thread in [(executor, None), *background]:
            ex.shutdown(timeout_sec=5.0)
            if thread is not None:
                thread.join(timeout=10.0)
        for node in [*nodes.values(), probe]:
            node.destroy_node()
    finally:
        rclpy.shutdown(context=context)
    delta = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    latencies_ms = [1e3 * lat for _, lat in window]
    median_ms_per_stack = statistics.median(ms_per_stack) if ms_per_stack else float("nan")
    out = {
        "depth_images": float(len(window)),
        "depth_per_s": len(window) / elapsed_s,
        "latency_ms_median": _percentile(latencies_ms, 50),
        "latency_ms_p90": _percentile(latencies_ms, 90),
        "dropped_frame_fraction": delta["buffer_frame_drops"] / max(delta["buffer_frames"], 1.0),
        "camera_fps": delta["camera_frames"] / elapsed_s,
        "buffer_stacks_per_s": delta["buffer_stacks"] / elapsed_s,
        "stacks_not_estimated_per_s": (delta["buffer_stacks"] - delta["inference_stacks"]) / elapsed_s,
        "ms_per_stack_classical_median": median_ms_per_stack,
        "cpu_cores_used": cpu_s / elapsed_s,
        "executor_spins_per_s": spins / elapsed_s,
        "back_end_busy_fraction": len(window) / elapsed_s * median_ms_per_stack / 1e3,
        "load_average_1min": load_1min,
        "seconds_measured": elapsed_s,
        "seconds_to_first_depth": first_depth_s,
    }
    for key, value in delta.items():
        if key.startswith("drop.") and value:
            out[f"dropped_frame_fraction_{key[5:]}"] = value / max(delta["buffer_frames"], 1.0)
    return out


def pointcloud_ms(runs: int) -> dict[str, float]:
    """Median ms to turn a 640x480 classical depth image into a PointCloud2 message, without and with rgb."""
    from std_msgs.msg import Header

    from dfdnet_core.estimator import make_estimator
    from dfdnet_core.optics import disparity_uniform_focus_m
    from dfdnet_core.pointcloud import depth_to_points
    from dfdnet_core.sim_camera import SimCamera, SimCameraConfig
    from dfdnet_core.stack import FocalStack
    from dfdnet_ros.conversions import pointcloud_msg

    config = SimCameraConfig()  # 640x480, the sim setup's camera
    camera = SimCamera(config)
    focus = np.array(sorted(disparity_uniform_focus_m(0.4, 2.0, 5)))
    stack = FocalStack(np.stack([camera.capture(f) for f in focus]), focus, camera.intrinsics, config.optics)
    result = make_estimator("classical").estimate(stack)
    header = Header(frame_id="camera_optical_frame")
    out = {"pointcloud_valid_fraction": float(np.isfinite(result.depth_m).mean())}
    for label, rgb in (("xyz", None), ("xyzrgb", result.all_in_focus)):
        times = []
        for _ in range(runs + 2):
            t = time.perf_counter()
            pointcloud_msg(depth_to_points(result.depth_m, stack.intrinsics), rgb, header)
            times.append(time.perf_counter() - t)
        out[f"pointcloud_ms_{label}_640x480"] = 1e3 * statistics.median(times[2:])
    return out


def _markdown(results: dict[str, Any]) -> str:
    r = results
    rows = [
        ("depth images per second", "depth_per_s", "{:.2f}"),
        ("frame-to-depth latency, median (ms)", "latency_ms_median", "{:.0f}"),
        ("frame-to-depth latency, p90 (ms)", "latency_ms_p90", "{:.0f}"),
        ("dropped-frame fraction (all reasons)", "dropped_frame_fraction", "{:.3f}"),
        ("... superseded (an older frame of the same step)", "dropped_frame_fraction_superseded", "{:.3f}"),
        ("... exposed while the lens moved", "dropped_frame_fraction_lens_moving", "{:.3f}"),
        ("... sweep incomplete (per sweep: a step had no frame)", "dropped_frame_fraction_sweep_incomplete",
         "{:.3f}"),
        ("stacks published by stack_buffer per second", "buffer_stacks_per_s", "{:.2f}"),
        ("stacks the back end had no time for, per second", "stacks_not_estimated_per_s", "{:.2f}"),
        ("camera frames delivered per second (nominal 30)", "camera_fps", "{:.1f}"),
        ("classical back end, ms per stack (median)", "ms_per_stack_classical_median", "{:.0f}"),
        ("back end busy fraction (depth/s x ms per stack)", "back_end_busy_fraction", "{:.2f}"),
        ("CPU cores the process got (process time / wall time)", "cpu_cores_used", "{:.2f}"),
        ("spin_once calls per second in the main executor thread", "executor_spins_per_s", "{:.0f}"),
        ("1-minute load average of the machine at the start", "load_average_1min", "{:.1f}"),
    ]
    columns = [(mode, suffix) for suffix in LAYOUTS.values() for mode in MODES if f"depth_per_s_{mode}{suffix}" in r]
    names = {"": "", "_multi_executor": " (multi-threaded executor)"}
    lines = [
        "## Simulated pipeline: per-sweep vs rolling stacks",
        "",
        "The four nodes of the `sim` setup in one process, as `dfdnet run --sim`: sim_camera 640x480 at 30 fps, "
        "5 focus distances (0.4-2 m, ping-pong, 10 ms settle, 45 ms dwell), stack_buffer per sweep or rolling, "
        f"dfd_inference with the classical back end; {r['seconds_per_mode']:.0f} s measured per run after warm-up. "
        "Executors as `dfdnet run` (plain columns): dfd_inference in its own thread and SingleThreadedExecutor, the "
        "other nodes in a SingleThreadedExecutor; \"multi-threaded executor\" columns: one 4-thread "
        "MultiThreadedExecutor for all nodes, which busy-waits and starves the callbacks (ros2/rclpy#1452). "
        "Latency: depth arrival minus the exposure start of the newest frame of its stack "
        "(it includes the simulated camera's readout wait of up to one lens step). "
        f"Machine: {r['machine']}, shared with other jobs (see the load average); {r['date']}; "
        f"command `{r['command']}`.",
        "",
        "| figure | " + " | ".join(f"{m.replace('_', ' ')}{names[x]}" for m, x in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label, key, fmt in rows:
        cells = [fmt.format(r.get(f"{key}_{mode}{suffix}", 0.0)) for mode, suffix in columns]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append("")
    for suffix in LAYOUTS.values():
        ratio = r.get(f"depth_rate_ratio_rolling_over_per_sweep{suffix}")
        if ratio is not None:
            lines.append(f"Rolling / per-sweep depth rate{names[suffix]}: **{ratio:.2f}x** (goal >= 4x).  ")
    lines += [
        "",
        "Reading the limits: a back end busy fraction near 1 means the depth rate is bound by the classical "
        "estimator on the CPU the process got; spin_once calls far above the ~200 events per second the nodes "
        "handle mean the executor's main thread is busy-waiting (rclpy's MultiThreadedExecutor keeps waking while a "
        "node's mutually exclusive callback group is busy in a worker), which costs the GIL the callbacks need. "
        "Per sweep, the lens timing alone allows at most 1 / (4 x 55 ms + 45 ms) = 3.8 stacks per second.",
        "",
        f"Depth image -> PointCloud2 message at 640x480 (`depth_to_points` + `pointcloud_msg`, median of 20): "
        f"{r['pointcloud_ms_xyz_640x480']:.1f} ms xyz, {r['pointcloud_ms_xyzrgb_640x480']:.1f} ms xyz+rgb.",
    ]
    if r.get("notes"):
        lines += ["", r["notes"]]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Run both modes and the point-cloud timing; print and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per mode (default 30)")
    parser.add_argument("--warmup", type=float, default=5.0, help="seconds after the first depth image (default 5)")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of per_sweep,rolling")
    parser.add_argument("--out", default=str(ROOT / "docs" / "benchmarks"), help="folder for JSON and Markdown")
    parser.add_argument("--notes", default="", help="a sentence added to the Markdown section")
    parser.add_argument("--executors", default=",".join(LAYOUTS),
                        help="comma-separated subset of split (as `dfdnet run`), multi (one MultiThreadedExecutor)")
    args = parser.parse_args(argv)
    from dfdnet_ros.runner import default_params_file

    params_file = default_params_file("sim")
    results: dict[str, Any] = {
        "machine": f"{platform.machine()}, {platform.system()}, {_cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "command": "python " + " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "date": datetime.date.today().isoformat(),
        "seconds_per_mode": args.seconds,
        "image_width_px": 640, "image_height_px": 480, "stack_size": 5, "camera_fps_nominal": 30.0,
        "backend": "classical",
    }
    for layout in args.executors.split(","):
        suffix = LAYOUTS[layout]
        for mode in args.modes.split(","):
            print(f"pipeline: {mode}, {layout} executor ...", flush=True)
            for key, value in run_mode(mode, args.seconds, args.warmup, params_file, layout).items():
                results[f"{key}_{mode}{suffix}"] = value
        # a ratio over a starved run (almost no per-sweep depth) means nothing: leave it out
        rates = [results.get(f"depth_per_s_{m}{suffix}") for m in MODES]
        if None not in rates and results[f"depth_per_s_per_sweep{suffix}"] > 0.1:
            results[f"depth_rate_ratio_rolling_over_per_sweep{suffix}"] = (
                results[f"depth_per_s_rolling{suffix}"] / results[f"depth_per_s_per_sweep{suffix}"])
    results |= pointcloud_ms(runs=20)
    results["notes"] = args.notes
    results = {k: round(v, 4) if isinstance(v, float) else v for k, v in results.items()}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    if any(k.startswith("depth_rate_ratio") for k in results):
        markdown = _markdown(results)
        (out / "pipeline.md").write_text(markdown)
        print(markdown)
    else:
        print(json.dumps(results, indent=2, sort_keys=True))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
