"""Configs of the ROS nodes that are not already a core config (SweepConfig, StackAssemblerConfig,
SimCameraConfig). Each field is one ROS parameter of the same name; defaults live only here."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from dfdnet_core.errors import ConfigError
from dfdnet_core.optics import LensOptics


@dataclass(frozen=True)
class ControllerConfig:
    """focus_sweep_controller parameters besides the sweep itself (see :class:`dfdnet_core.sweep.SweepConfig`)."""

    driver: str = field(
        default="sim",
        metadata={"description": "lens driver", "choices": ("sim", "optotune", "v4l2", "libcamera")},
    )
    driver_options: str = field(
        default="{}",
        metadata={"description": "driver constructor options as a JSON object, e.g. {\"port\": \"/dev/ttyACM0\"}"},
    )
    dwell_time_s: float = field(
        default=0.045,
        metadata={
            "description": "time the lens stays at each focus after settling (seconds); >= one camera frame period",
            "range": (0.0, 10.0, 0.0),
        },
    )
    reconnect_period_s: float = field(
        default=1.0, metadata={"description": "retry period after a driver failure (seconds)"}
    )
    frame_id: str = field(default="camera_optical_frame", metadata={"description": "optical frame of the camera"})

    def __post_init__(self) -> None:
        if not (math.isfinite(self.dwell_time_s) and self.dwell_time_s >= 0):
            raise ConfigError(f"dwell_time_s must be >= 0 s, got {self.dwell_time_s!r}")
        if not (math.isfinite(self.reconnect_period_s) and self.reconnect_period_s > 0):
            raise ConfigError(f"reconnect_period_s must be > 0 s, got {self.reconnect_period_s!r}")
        _ = self.driver_options_dict  # validates the JSON

    @property
    def driver_options_dict(self) -> dict[str, Any]:
        """``driver_options`` parsed (JSON lists become tuples, e.g. focus_range_m)."""
        try:
            options = json.loads(self.driver_options or "{}")
        except json.JSONDecodeError as exc:
            raise ConfigError(f"driver_options must be a JSON object, got {self.driver_options!r}: {exc}") from None
        if not isinstance(options, dict):
            raise ConfigError(f"driver_options must be a JSON object, got {self.driver_options!r}")
        return {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}


@dataclass(frozen=True)
class CameraOpticsConfig:
    """The lens of the camera feeding stack_buffer: written into every FocusStack (0 = unknown)."""

    focal_length_m: float = field(default=0.0, metadata={"description": "lens focal length (metres); 0 = unknown"})
    f_number: float = field(default=0.0, metadata={"description": "aperture f-number; 0 = unknown, inf = pinhole"})
    pixel_pitch_m: float = field(
        default=0.0, metadata={"description": "pixel size on the sensor at the image resolution (metres); 0 = unknown"}
    )

    def __post_init__(self) -> None:
        for name in ("focal_length_m", "f_number", "pixel_pitch_m"):
            value = getattr(self, name)
            if math.isnan(value) or value < 0:
                raise ConfigError(f"{name} must be >= 0 (0 = unknown), got {value!r}")

    @property
    def optics(self) -> LensOptics | None:
        """The optics, or None while any value is unknown."""
        if self.focal_length_m == 0 or self.f_number == 0 or self.pixel_pitch_m == 0:
            return None
        return LensOptics(self.focal_length_m, self.f_number, self.pixel_pitch_m)


@dataclass(frozen=True)
class InferenceConfig:
    """dfd_inference parameters."""

    backend: str = field(
        default="classical",
        metadata={"description": "depth estimator back end", "choices": ("classical", "torch", "onnx", "tensorrt")},
    )
    checkpoint_path: str = field(
        default="", metadata={"description": "model file for learned back ends ('' = the shipped default)"}
    )
    publish_points: bool = field(default=True, metadata={"description": "publish /dfd/points (PointCloud2)"})
    points_with_rgb: bool = field(
        default=True, metadata={"description": "colour the points from the all-in-focus image"}
    )
    num_threads: int = field(
        default=0, metadata={"description": "CPU threads for the back end (0 = library default)", "range": (0, 256, 1)}
    )

    def __post_init__(self) -> None:
        if self.num_threads < 0:
            raise ConfigError(f"num_threads must be >= 0, got {self.num_threads!r}")


def node_config_classes() -> dict[str, tuple[type, ...]]:
    """Each dfdnet node's name and the config dataclasses whose fields are its ROS parameters.

    The one place that says which parameters a node declares: the nodes, the launch-file test and the docs use it.
    """
    from dfdnet_core.bag_writer import RecorderConfig
    from dfdnet_core.sim_camera import SimCameraConfig
    from dfdnet_core.stack_assembler import StackAssemblerConfig
    from dfdnet_core.sweep import SweepConfig

    return {
        "sim_camera": (SimCameraConfig,),
        "focus_sweep_controller": (SweepConfig, ControllerConfig),
        "stack_buffer": (StackAssemblerConfig, CameraOpticsConfig),
        "dfd_inference": (InferenceConfig,),
        "dfd_recorder": (RecorderConfig, CameraOpticsConfig),
    }
