"""The `dfdnet` command: run the pipeline, evaluate, train, export, calibrate a lens.

Subcommands that need ROS (``run``) import rclpy only when called, so the rest works with plain pip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def _cmd_run(args: argparse.Namespace) -> int:
    try:
        from dfdnet_ros.runner import run
    except ImportError as exc:
        print(f"dfdnet run needs ROS 2 (rclpy) and the built dfdnet_ros package: {exc}\n"
              "Run `make run` from the repository, or source install/setup.bash first.", file=sys.stderr)
        return 2
    overrides: dict[str, dict[str, object]] = {}
    if args.backend:
        overrides.setdefault("dfd_inference", {})["backend"] = args.backend
    if args.checkpoint:
        overrides.setdefault("dfd_inference", {})["checkpoint_path"] = str(args.checkpoint)
    if args.rolling:
        overrides.setdefault("stack_buffer", {})["rolling"] = True
    setup = "sim" if args.sim else "camera"
    run(setup, args.params_file, args.duration, args.out, overrides)
    return 0


def _loader_options(pairs: list[str]) -> dict[str, object]:
    """``key=value`` loader options, values parsed as YAML (``max_side_px=640``, ``slice_indices=[0,2,4]``)."""
    from dfdnet_core.config import parse_key_values

    return parse_key_values(pairs, "loader option")


def _cmd_eval(args: argparse.Namespace) -> int:
    import datetime
    import platform
    import shlex

    from dfdnet_core.errors import ConfigError, DfdError

    try:
        from dfdnet_core import evaluation as ev
        from dfdnet_core.estimator import make_estimator

        focus = ev.FocusSchedule.parse(args.focus)
        n_slices = args.n_slices or (len(focus.distances_m) if focus.kind == "fixed" else 5)
        render = ev.RenderProtocol(
            f_number=args.f_number, n_slices=n_slices, focus=focus, render_mode=args.render_mode, psf=args.psf,
            psf_exponent=args.psf_exponent, sensor_width_m=args.sensor_width_mm * 1e-3,
            focal_length_m=None if args.focal_length_mm is None else args.focal_length_mm * 1e-3,
        )
        config = ev.EvalConfig(
            render=render, max_side_px=args.max_side, panels=args.panels, min_depth_m=args.min_depth,
            max_depth_m=args.max_depth, fallback_hfov_deg=args.fallback_hfov_deg, device=args.device,
        )
        if args.checkpoint is not None and args.backend == "classical":
            raise ConfigError(f"the classical backend takes no checkpoint, got --checkpoint {str(args.checkpoint)!r}")
        options = {} if args.checkpoint is None else {"checkpoint_path": str(args.checkpoint)}
        estimator = make_estimator(args.backend, **options)
        if args.bag is None:
            if args.from_stacks or args.params_file is not None:
                raise ConfigError("--from-stacks and --params-file apply to a recording: add --bag PATH")
            samples, label = ev.open_eval_source(
                args.dataset, args.root, _loader_options(args.option), args.procedural, args.procedural_size,
                args.max_side,
            )
            total = len(samples) if args.limit is None else min(args.limit, len(samples))
        metadata = {
            "command": "dfdnet " + shlex.join(sys.argv[1:]),
            "arguments": {k: str(v) for k, v in vars(args).items() if k != "func"},
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "machine": f"{platform.node()} {platform.machine()} {platform.processor()}".strip(),
        }
        if args.bag is not None:
            report = _eval_bag(args, {args.backend: estimator}, config, metadata)
            total = len(report.samples)
        else:
            report = ev.evaluate(
                {args.backend: estimator}, (samples[i] for i in range(total)), config, args.out, dataset=label,
                total=total, progress=not args.no_progress, metadata=metadata,
            )
    except DfdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(ev.report_markdown(report).split("| sample |")[0].rstrip())
    print(f"wrote {args.out / 'metrics.json'}, {args.out / 'metrics.md'} and {min(config.panels, total)} panel(s)")
    return 0


def _eval_bag(args: argparse.Namespace, estimators: dict[str, Any], config: Any, metadata: dict[str, Any]) -> Any:
    """`dfdnet eval --bag`: the recording's focal stacks (replayed or recorded), scored like a data set."""
    from dfdnet_core.errors import ConfigError
    from dfdnet_core.evaluation_bag import bag_eval_options, evaluate_bag

    if args.root is not None or args.procedural is not None:
        raise ConfigError(f"--bag {str(args.bag)!r} is the data source: drop --root / --procedural")
    options = bag_eval_options(
        _loader_options(args.option), params_file=args.params_file, from_stacks=args.from_stacks,
        focal_length_m=None if args.focal_length_mm is None else args.focal_length_mm * 1e-3,
    )
    report = evaluate_bag(estimators, args.bag, config, args.out, options=options, limit=args.limit,
                          progress=not args.no_progress, metadata=metadata)
    bag = report.metadata["bag"]
    drops = bag["assembler"].get("frame_drops", {}) if bag["assembler"] else {}
    print(f"bag: {bag['stacks']} stack(s), {bag['stacks_with_ground_truth']} with ground truth ({bag['source']})"
          + (f"; frames dropped: {drops}" if drops else ""))
    return report


def _cmd_record(args: argparse.Namespace) -> int:
    try:
        from dfdnet_ros.recorder_node import record
    except ImportError as exc:
        print(f"dfdnet record needs ROS 2 (rclpy) and the built dfdnet_ros package: {exc}\n"
              "Run it from the built workspace (tools/in_env.sh), or source install/setup.bash first.", file=sys.stderr)
        return 2
    from dfdnet_core.bag import RecorderConfig
    from dfdnet_core.errors import DfdError

    topics = list(RecorderConfig.topics) + (["/dfd/stack"] if args.with_stack else [])
    topics += (["/dfd/depth"] if args.with_depth else []) + list(args.topic)
    try:
        record("sim" if args.sim else "camera", args.out, args.duration, args.params_file, tuple(topics),
               args.storage)
    except DfdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from dfdnet_core.errors import DfdError

    try:
        from dfdnet_core.training.config import load_train_config
        from dfdnet_core.training.loop import train

        overrides: dict[str, object] = dict(_loader_options(args.set))
        if args.out_dir is not None:
            overrides["out_dir"] = str(args.out_dir)
        config = load_train_config(args.config, **overrides)
        summary = train(config, resume=not args.no_resume, progress=not args.no_progress)
    except DfdError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"trained {summary['steps']} steps in {summary['elapsed_s']} s ({summary['stop_reason']}); "
          f"last: {summary['last']}; wrote {', '.join(summary['files'])}")
    return 0


def _cmd_calibrate_lens(args: argparse.Namespace) -> int:
    from dfdnet_core.errors import DfdError
    from dfdnet_core.lens_calibration import calibrate_from_pairs, read_measured_pairs

    try:
        measured = read_measured_pairs(args.pairs)
        unit = args.unit or measured.unit_name
        if unit is None:
            print(f"dfdnet calibrate-lens: {args.pairs} does not name its unit; pass --unit mA|diopt|step",
                  file=sys.stderr)
            return 2
        report = calibrate_from_pairs(unit, measured.pairs, args.out)
    except DfdError as exc:
        print(f"dfdnet calibrate-lens: {exc}", file=sys.stderr)
        return 2
    print(report.summary())
    print("pass it to the lens driver as calibration_path (driver_options of focus_sweep_controller)")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="dfdnet", description="Depth from defocus for robots.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the ROS 2 pipeline in one process (what the launch files start)")
    run.add_argument("--sim", action="store_true", help="add the simulated camera and lens (no hardware)")
    run.add_argument("--params-file", type=Path, default=None, help="ROS 2 parameter YAML (default: config/)")
    run.add_argument("--duration", type=float, default=30.0, help="seconds to run, 0 = until Ctrl-C")
    run.add_argument("--out", type=Path, default=Path("out"), help="folder for depth.png, points.ply, ...")
    run.add_argument("--backend", default=None, help="override dfd_inference's backend (classical, torch, ...)")
    run.add_argument("--checkpoint", type=Path, default=None, help="model checkpoint for learned back ends")
    run.add_argument("--rolling", action="store_true", help="rolling stacks: depth on every settled frame")
    run.set_defaults(func=_cmd_run)

    ev = sub.add_parser("eval", help="evaluate a depth estimator on a data set (metrics JSON/Markdown, PNG panels)")
    src = ev.add_argument_group("data")
    src.add_argument("--dataset", default="focal_stack_folder", help="registry name (dfdnet_core.data.DATASETS)")
    src.add_argument("--root", type=Path, default=None, help="data set folder or file")
    src.add_argument("-o", "--option", action="append", default=[], help="loader option key=value (YAML value)")
    src.add_argument("--procedural", type=int, default=None, metavar="N",
                     help="N procedural validation scenes instead of a data set (seeds never used in training)")
    src.add_argument("--procedural-size", default="240x320", help="HxW of the procedural scenes, pixels")
    src.add_argument("--limit", type=int, default=None, help="evaluate only the first LIMIT samples")
    src.add_argument("--max-side", type=int, default=None, help="shrink images to at most this many pixels")
    src.add_argument("--bag", type=Path, default=None,
                     help="rosbag2 recording (mcap/sqlite3) of camera + lens topics instead of a data set; "
                          "-o image_topic=/cam/image_raw etc. rename topics (see docs)")
    src.add_argument("--from-stacks", action="store_true",
                     help="with --bag: score the recorded /dfd/stack messages instead of replaying the frames")
    src.add_argument("--params-file", type=Path, default=None,
                     help="with --bag: ROS 2 parameter file whose stack_buffer section sets pairing and optics")
    est = ev.add_argument_group("estimator")
    est.add_argument("--backend", default="classical", help="depth backend: classical, torch, ...")
    est.add_argument("--checkpoint", type=Path, default=None, help="model checkpoint for learned back ends")
    pro = ev.add_argument_group("rendering protocol (RGB-D data sets)")
    pro.add_argument("--f-number", type=float, default=1.4, help="aperture f-number (inf = all in focus)")
    pro.add_argument("--n-slices", type=int, default=None, help="slices per stack (default 5, or the fixed list)")
    pro.add_argument("--focus", default="adaptive",
                     help="fixed:D1,D2,... (m) | range:NEAR,FAR (m, uniform in 1/d) | adaptive (5-95 %% GT disparity)")
    pro.add_argument("--render-mode", default="gather", choices=("gather", "layered"))
    pro.add_argument("--psf", default="gaussian", choices=("gaussian", "generalised_gaussian"))
    pro.add_argument("--psf-exponent", type=float, default=2.0, help="p of the generalised Gaussian PSF")
    pro.add_argument("--sensor-width-mm", type=float, default=36.0, help="physical width of the long image edge")
    pro.add_argument("--focal-length-mm", type=float, default=None, help="fixed focal length (default pitch x fx)")
    pro.add_argument("--fallback-hfov-deg", type=float, default=60.0,
                     help="field of view if a sample has no intrinsics")
    out = ev.add_argument_group("scoring and output")
    out.add_argument("--min-depth", type=float, default=1e-3, help="ground truth below this (m) is not scored")
    out.add_argument("--max-depth", type=float, default=float("inf"), help="ground truth above this (m) is not scored")
    out.add_argument("--panels", type=int, default=4, help="PNG panels for the first K samples")
    out.add_argument("--out", type=Path, default=Path("out/eval"), help="folder for metrics.json/.md and panels/")
    out.add_argument("--device", default="cpu", help="torch device for rendering (cpu, cuda)")
    out.add_argument("--no-progress", action="store_true", help="no progress bar")
    ev.set_defaults(func=_cmd_eval)

    rec = sub.add_parser("record", help="run the pipeline and record camera, lens and ground truth to a rosbag2")
    rec.add_argument("--sim", action="store_true", help="the simulated camera and lens (no hardware)")
    rec.add_argument("--duration", type=float, default=10.0, help="seconds to record, 0 = until Ctrl-C")
    rec.add_argument("--out", type=Path, default=None, help="bag folder to create (default rosbag2_<date>)")
    rec.add_argument("--params-file", type=Path, default=None, help="ROS 2 parameter YAML (default: config/)")
    rec.add_argument("--storage", choices=("mcap", "sqlite3"), default="mcap", help="rosbag2 storage plug-in")
    rec.add_argument("--with-stack", action="store_true", help="also record /dfd/stack (FocusStack)")
    rec.add_argument("--with-depth", action="store_true", help="also record /dfd/depth")
    rec.add_argument("--topic", action="append", default=[], help="record this topic too (absolute name)")
    rec.set_defaults(func=_cmd_record)

    tr = sub.add_parser("train", help="train DfDNet on focal stacks rendered on the fly (torchrun for DDP)")
    tr.add_argument("--config", type=Path, required=True, help="training YAML (see configs/train_tiny.yaml)")
    tr.add_argument("--out-dir", type=Path, default=None, help="override the config's out_dir")
    tr.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override one config key (YAML value), e.g. --set max_steps=100")
    tr.add_argument("--no-resume", action="store_true", help="start afresh even if out_dir has a state.pt")
    tr.add_argument("--no-progress", action="store_true", help="no progress bar")
    tr.set_defaults(func=_cmd_train)

    cal = sub.add_parser("calibrate-lens", help="fit lens driver units (mA, dioptres, V4L2 steps) to focus distance")
    cal.add_argument("pairs", type=Path, help="measured pairs: CSV with a '<unit>,focus_m' header, or YAML")
    cal.add_argument("--unit", choices=("mA", "diopt", "step"), default=None, help="driver unit, if not in the file")
    cal.add_argument("--out", type=Path, default=Path("lens_calibration.yaml"), help="calibration YAML to write")
    cal.set_defaults(func=_cmd_calibrate_lens)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dfdnet` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
