"""The `dfdnet` command: run the pipeline, evaluate, train, export, calibrate a lens.

Subcommands that need ROS (``run``) import rclpy only when called, so the rest works with plain pip.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


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
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `dfdnet` command."""
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
