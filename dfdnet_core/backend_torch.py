"""The PyTorch back end: DfDNet on a focal stack, the ``"torch"`` entry of the back-end registry.

Options: ``checkpoint_path`` (our ``.safetensors`` or a FOSSA ``.pth``; '' = the shipped
``models/dfdnet_tiny.safetensors``, see :func:`shipped_model_path`), ``num_threads`` (torch CPU
threads, 0 = leave torch's setting) and ``device`` (``cpu``, ``cuda``, ``cuda:1``, ...).

Decisions:

* Metric depth comes from :meth:`DfDNet.infer_stack` with the stack's intrinsics, so the canonical
  scaling (kappa = W / max(fx, fy)) is the one used in training.
* Confidence: the network predicts none, so it is 1 wherever the depth is finite and > 0 and 0
  elsewhere (the contract's "0 where depth is NaN"); depth <= 0 (possible only at the ReLU floor)
  becomes NaN. Downstream filtering that needs a real confidence should use the classical back end.
* All-in-focus: every pixel copied from the slice where the classical back end's focus measure is
  highest (the same focus measure, not a second implementation).
* Any N >= 2 slices, any order (the model is invariant to the order of the (image, focus) pairs).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import torch

from dfdnet_core.errors import CheckpointError, ConfigError
from dfdnet_core.estimator import DepthResult, register_backend
from dfdnet_core.stack import FocalStack

SHIPPED_MODEL = "dfdnet_tiny.safetensors"
"""File name of the shipped model in ``models/`` (source tree) or ``share/dfdnet_ros/models`` (installed)."""
ROS_PACKAGE = "dfdnet_ros"
"""The ROS package whose share folder holds ``models/`` once installed (CMakeLists.txt installs it)."""
MODELS_DIR_ENV = "DFDNET_MODELS_DIR"
"""Environment variable naming an extra folder searched first for the shipped model."""


def model_search_dirs() -> list[Path]:
    """Folders searched for the shipped model, in order.

    ``$DFDNET_MODELS_DIR``; the ament share folder of the ``dfdnet_ros`` package (when
    ``ament_index_python`` is importable and the package is installed); ``<prefix>/share/dfdnet_ros/models``
    of this Python; the source tree's ``models/``.
    """
    dirs: list[Path] = []
    if os.environ.get(MODELS_DIR_ENV):
        dirs.append(Path(os.environ[MODELS_DIR_ENV]))
    try:
        from ament_index_python.packages import PackageNotFoundError, get_package_share_directory

        try:
            dirs.append(Path(get_package_share_directory(ROS_PACKAGE)) / "models")
        except (PackageNotFoundError, OSError):  # not installed, or no ROS environment sourced
            pass
    except ImportError:
        pass
    dirs.append(Path(sys.prefix) / "share" / ROS_PACKAGE / "models")
    dirs.append(Path(__file__).resolve().parent.parent / "models")
    return dirs


def shipped_model_path() -> Path:
    """Path of the shipped ``dfdnet_tiny.safetensors``.

    Raises:
        CheckpointError: it is in none of :func:`model_search_dirs` (the message lists them).
    """
    dirs = model_search_dirs()
    for folder in dirs:
        candidate = folder / SHIPPED_MODEL
        if candidate.is_file():
            return candidate
    raise CheckpointError(
        f"the shipped model {SHIPPED_MODEL!r} is in none of {[str(d) for d in dirs]!r}; "
        "give checkpoint_path or set $DFDNET_MODELS_DIR"
    )


class TorchDfDNet:
    """DfDNet in PyTorch behind the :class:`~dfdnet_core.estimator.DepthEstimator` contract."""

    name = "torch"

    def __init__(
        self, checkpoint_path: str = "", num_threads: int = 0, device: str = "cpu", **unknown: object
    ) -> None:
        """Load the model.

        Args:
            checkpoint_path: ``.safetensors`` (ours) or ``.pth``/``.pt`` (FOSSA); '' = the shipped model.
            num_threads: torch CPU threads (0 = unchanged).
            device: torch device string.

        Raises:
            ConfigError: an unknown option, a negative thread count, an unknown device string, or CUDA
                asked for but absent.
            CheckpointError: the checkpoint cannot be found or loaded safely.
        """
        if unknown:
            raise ConfigError(
                f"unknown torch backend option(s) {sorted(unknown)!r}; known: "
                "['checkpoint_path', 'device', 'num_threads']"
            )
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 0:
            raise ConfigError(f"num_threads must be an integer >= 0, got {num_threads!r}")
        try:
            self.device = torch.device(device)
        except (RuntimeError, TypeError):
            raise ConfigError(
                f"device must be a torch device string such as 'cpu' or 'cuda:0', got {device!r}"
            ) from None
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise ConfigError(f"device {device!r} requested but CUDA is not available")
        if num_threads:
            torch.set_num_threads(num_threads)
        from dfdnet_core.model.checkpoint import load_model

        self.checkpoint_path = Path(checkpoint_path) if checkpoint_path else shipped_model_path()
        self.model = load_model(self.checkpoint_path, device=self.device)

    def estimate(self, stack: FocalStack) -> DepthResult:
        """Depth (m), confidence (1 where depth is valid) and all-in-focus image of one stack.

        Raises:
            StackError: a malformed stack (non-finite focus distance, e.g. ``inf``).
        """
        from dfdnet_core.model.prior import focus_volume_of

        # One focus-measure pass serves the prior model's inputs and the all-in-focus image.
        volume = focus_volume_of(stack.images)
        prior_volume = volume if self.model.config.depth_prior != "none" else None
        depth = self.model.infer_stack(
            stack.images, stack.focus_distances_m, intrinsics=stack.intrinsics, focus_volume=prior_volume,
            optics=stack.optics,
        )
        valid = np.isfinite(depth) & (depth > 0)
        depth = np.where(valid, depth, np.float32(np.nan)).astype(np.float32)
        confidence = valid.astype(np.float32)
        return DepthResult(depth, confidence, all_in_focus(stack, volume))


def all_in_focus(stack: FocalStack, focus_volume: np.ndarray | None = None) -> np.ndarray:
    """(H, W, 3) uint8: each pixel from the slice with the highest classical focus measure.

    ``focus_volume`` is that measure (N, H, W) if the caller already has it.
    """
    from dfdnet_core.model.prior import focus_volume_of

    volume = focus_volume_of(stack.images) if focus_volume is None else focus_volume
    sharpest = np.argmax(volume, axis=0)
    rows, cols = np.indices(sharpest.shape)
    return np.ascontiguousarray(stack.images[sharpest, rows, cols])


register_backend("torch", TorchDfDNet)
