"""The one inference contract shared by every depth back end and the inference node.

stack (N images + focus distances in metres + intrinsics) -> depth in metres at the input size, a confidence in
[0, 1] and an all-in-focus image. Back ends live in ``backend_<name>.py`` and are chosen from :data:`BACKENDS`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from dfdnet_core.errors import ConfigError
from dfdnet_core.stack import FocalStack


@dataclass(frozen=True)
class DepthResult:
    """What an estimator returns for one stack.

    Attributes:
        depth_m: (H, W) float32 depth in metres along the optical axis; NaN where there is no depth.
        confidence: (H, W) float32 in [0, 1]; 0 where depth is NaN.
        all_in_focus: (H, W, 3) uint8 RGB all-in-focus image.
    """

    depth_m: npt.NDArray[np.float32]
    confidence: npt.NDArray[np.float32]
    all_in_focus: npt.NDArray[np.uint8]


@runtime_checkable
class DepthEstimator(Protocol):
    """Anything that turns a focal stack into metric depth."""

    name: str

    def estimate(self, stack: FocalStack) -> DepthResult:
        """Depth, confidence and all-in-focus image at the stack's resolution."""
        ...


BackendFactory = Callable[..., DepthEstimator]
BACKENDS: dict[str, BackendFactory] = {}


def register_backend(name: str, factory: BackendFactory) -> None:
    """Add a back end to the registry under ``name``."""
    BACKENDS[name] = factory


def make_estimator(name: str, **options: Any) -> DepthEstimator:
    """Build the back end called ``name`` with its options.

    Raises:
        ConfigError: ``name`` is not a known back end.
    """
    _load_builtin_backends()
    try:
        factory = BACKENDS[name]
    except KeyError:
        raise ConfigError(f"unknown depth backend {name!r}; known: {sorted(BACKENDS)}") from None
    return factory(**options)


def _load_builtin_backends() -> None:
    """Import the built-in back ends so that they register themselves."""
    import dfdnet_core.backend_classical
    try:  # the torch back end needs torch; installs without it keep the others
        import dfdnet_core.backend_torch  # noqa: F401
    except ModuleNotFoundError as exc:
        if exc.name not in ("torch", "safetensors"):
            raise
