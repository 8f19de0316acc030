"""DfDNet: focal stack -> metric depth (ViT + attention across the stack + DPT head).

A DINOv2-style ViT runs over every image of the stack, attends across the stack in its first blocks,
collapses the stack to one stream after block K and feeds a DPT head; depth is predicted in a
canonical (focal-length-agnostic) space.

Public names are imported lazily, so ``dfdnet_core.model.canonical`` and ``dfdnet_core.model.sizes``
(numpy only) stay usable where torch is not installed (ONNX / TensorRT back ends).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dfdnet_core.model.canonical import (
        NetworkInputs,
        canonical_scale,
        depth_m_from_canonical,
        prepare_stack,
        resolve_focal_length_px,
    )
    from dfdnet_core.model.checkpoint import (
        load_checkpoint,
        load_fossa_checkpoint,
        load_model,
        read_fossa_state_dict,
        save_checkpoint,
    )
    from dfdnet_core.model.dfdnet import DfDNet, count_parameters, network_input_size
    from dfdnet_core.model.sizes import SIZES, ModelConfig, config_for_size

_EXPORTS = {
    "DfDNet": "dfdnet",
    "count_parameters": "dfdnet",
    "network_input_size": "dfdnet",
    "ModelConfig": "sizes",
    "SIZES": "sizes",
    "config_for_size": "sizes",
    "NetworkInputs": "canonical",
    "canonical_scale": "canonical",
    "depth_m_from_canonical": "canonical",
    "resolve_focal_length_px": "canonical",
    "prepare_stack": "canonical",
    "load_checkpoint": "checkpoint",
    "load_fossa_checkpoint": "checkpoint",
    "load_model": "checkpoint",
    "read_fossa_state_dict": "checkpoint",
    "save_checkpoint": "checkpoint",
}

__all__ = [
    "SIZES",
    "DfDNet",
    "ModelConfig",
    "NetworkInputs",
    "canonical_scale",
    "config_for_size",
    "count_parameters",
    "depth_m_from_canonical",
    "load_checkpoint",
    "load_fossa_checkpoint",
    "load_model",
    "network_input_size",
    "prepare_stack",
    "read_fossa_state_dict",
    "resolve_focal_length_px",
    "save_checkpoint",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"dfdnet_core.model.{module}"), name)
