"""Loading FOSSA checkpoints and saving/loading our own.

- FOSSA ``model.pth``: a pickle whose ``"model"`` entry is the state dict. It is read with
  ``torch.load(weights_only=True)``, so a pickle that asks for anything but tensors and plain
  containers is refused before any of it runs. Every ``module.`` substring is removed from the keys
  (the DDP prefix), and loading is strict: the keys and shapes must equal our model's.
- Our checkpoints: a safetensors file whose metadata entry ``dfdnet`` is JSON
  ``{"size": <name or "custom">, "config": {<ModelConfig fields>}}``.
"""

from __future__ import annotations

import json
import pickle
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from dfdnet_core.errors import CheckpointError, ConfigError
from dfdnet_core.model.dfdnet import DfDNet
from dfdnet_core.model.sizes import ModelConfig, config_for_size, size_name_of

METADATA_KEY = "dfdnet"
"""safetensors metadata entry holding the JSON model description."""
FOSSA_WIDTH_TO_SIZE = {384: "small", 768: "base"}
"""FOSSA encoder width (``pretrained.pos_embed`` last dimension) -> size name."""
_MAX_LISTED = 5

PathLike = str | Path


def strip_module_prefix(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Delete every ``module.`` in every key (FOSSA's loader rule; removes DDP prefixes)."""
    return {key.replace("module.", ""): value for key, value in state_dict.items()}


def read_fossa_state_dict(path: PathLike) -> dict[str, torch.Tensor]:
    """Read a FOSSA ``model.pth`` safely; its state dict with ``module.`` removed from the keys.

    Accepts ``{"model": state_dict, ...}`` (the released layout) or a bare state dict.

    Raises:
        CheckpointError: the file is missing, truncated, not a PyTorch checkpoint, holds a pickle
            that asks for code (refused, nothing runs), or holds no tensor state dict.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*pickle protocol.*", category=UserWarning)
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refused to load checkpoint {str(path)!r}: not a weights-only PyTorch file, or "
            "corrupt (only tensors and plain containers are allowed; nothing in it was run): "
            f"{_unpickling_reason(exc)}"
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or not a PyTorch checkpoint: "
            f"{type(exc).__name__}: {_first_line(exc, 'unexpected end of file')}"
        ) from None
    state_dict = payload.get("model", payload) if isinstance(payload, dict) else payload
    if (
        not isinstance(state_dict, Mapping)
        or not state_dict
        or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state_dict.items()
        )
    ):
        raise CheckpointError(
            f"checkpoint {str(path)!r} holds no state dict of tensors "
            f"(expected {{'model': state_dict}}, got {type(state_dict).__name__})"
        )
    return strip_module_prefix(state_dict)


def _first_line(exc: BaseException, default: str) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else default


def _unpickling_reason(exc: pickle.UnpicklingError) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    for marker in ("GLOBAL", "Unsupported", "Unpickler error"):
        for line in lines:
            if marker in line:
                return line
    return lines[0] if lines else "malformed pickle"


def fossa_size_of(state_dict: Mapping[str, torch.Tensor], source: str = "<state dict>") -> str:
    """The size name (``small`` / ``base``) of a FOSSA state dict, from its encoder width.

    Raises:
        CheckpointError: no ``pretrained.pos_embed`` or a width that is not ViT-S/ViT-B.
    """
    pos_embed = state_dict.get("pretrained.pos_embed")
    width = None if pos_embed is None or pos_embed.dim() != 3 else int(pos_embed.shape[-1])
    if width not in FOSSA_WIDTH_TO_SIZE:
        raise CheckpointError(
            f"cannot tell the FOSSA size of {source}: pretrained.pos_embed width is {width!r}, "
            f"expected one of {sorted(FOSSA_WIDTH_TO_SIZE)}"
        )
    return FOSSA_WIDTH_TO_SIZE[width]


def check_state_dict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "<state dict>"
) -> None:
    """Check that ``state_dict`` has exactly the model's keys with the same shapes.

    Raises:
        CheckpointError: naming the first missing keys, unexpected keys and shape mismatches.
    """
    expected = {key: tuple(value.shape) for key, value in model.state_dict().items()}
    missing = [key for key in expected if key not in state_dict]
    unexpected = [key for key in state_dict if key not in expected]
    wrong_shape = [
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {shape}"
        for key, shape in expected.items()
        if key in state_dict and tuple(state_dict[key].shape) != shape
    ]
    problems = []
    for label, items in (
        ("missing keys", missing),
        ("unexpected keys", unexpected),
        ("shape", wrong_shape),
    ):
        if items:
            more = f" (+{len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
            problems.append(f"{len(items)} {label}: {items[:_MAX_LISTED]!r}{more}")
    if problems:
        raise CheckpointError(
            f"checkpoint {source} does not match the model: " + "; ".join(problems)
        )


def load_state_dict_strict(
    model: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str = "<state dict>"
) -> None:
    """:func:`check_state_dict`, then copy the tensors into ``model`` (cast to its dtype/device).

    Raises:
        CheckpointError: keys or shapes differ.
    """
    check_state_dict(model, state_dict, source)
    model.load_state_dict(dict(state_dict), strict=True)


def load_fossa_checkpoint(
    path: PathLike, size: str | None = None, device: str | torch.device = "cpu"
) -> DfDNet:
    """Build a :class:`DfDNet` of FOSSA's shape and load a FOSSA ``model.pth`` into it strictly.

    Args:
        path: the ``model.pth`` file.
        size: ``small`` or ``base``; None = tell from the checkpoint's encoder width.
        device: where the model is put.

    Returns:
        The model in eval mode. Its inputs are canonical (see :mod:`dfdnet_core.model.canonical`).

    Raises:
        CheckpointError: unreadable/unsafe file, unknown width, or keys/shapes that differ from the
            model.
        ConfigError: unknown size name.
    """
    source = repr(str(path))
    state_dict = read_fossa_state_dict(path)
    name = size if size is not None else fossa_size_of(state_dict, source)
    with torch.device("meta"):
        model = DfDNet(config_for_size(name))
    check_state_dict(model, state_dict, source)
    model.load_state_dict(dict(state_dict), strict=True, assign=True)
    return model.to(device=device, dtype=torch.float32).eval()


def save_checkpoint(model: DfDNet, path: PathLike) -> None:
    """Write ``model`` as safetensors with its config as JSON metadata (entry ``dfdnet``)."""
    size = size_name_of(model.config) or "custom"
    description = json.dumps({"size": size, "config": model.config.to_dict()}, sort_keys=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, str(path), metadata={METADATA_KEY: description, "format": "pt"})


def read_checkpoint_config(path: PathLike) -> tuple[str, ModelConfig]:
    """The size name and config stored in one of our safetensors checkpoints.

    Raises:
        CheckpointError: unreadable file or no/invalid ``dfdnet`` metadata.
        ConfigError: an unknown or invalid config key.
    """
    path = Path(path)
    metadata = _safetensors_metadata(path)
    if METADATA_KEY not in metadata:
        raise CheckpointError(
            f"checkpoint {str(path)!r} has no {METADATA_KEY!r} metadata entry "
            "(not a dfdnet checkpoint)"
        )
    try:
        description: Any = json.loads(metadata[METADATA_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r}: metadata {METADATA_KEY!r} is not JSON: {exc}"
        ) from None
    if not isinstance(description, dict) or not isinstance(description.get("config"), dict):
        raise CheckpointError(
            f"checkpoint {str(path)!r}: metadata {METADATA_KEY!r} must be an object with a "
            "'config' object"
        )
    for key in description:
        if key not in ("size", "config"):
            raise ConfigError(
                f"unknown key {key!r} in the {METADATA_KEY!r} metadata of {str(path)!r}"
            )
    config = ModelConfig.from_dict(description["config"], source=repr(str(path)))
    return str(description.get("size", "custom")), config


def load_checkpoint(path: PathLike, device: str | torch.device = "cpu") -> DfDNet:
    """Build the model described by one of our safetensors checkpoints; load its weights strictly.

    Returns:
        The model in eval mode.

    Raises:
        CheckpointError: unreadable file, missing metadata, or keys/shapes that differ from the
            config's model.
        ConfigError: an unknown or invalid config key.
    """
    path = Path(path)
    _, config = read_checkpoint_config(path)
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            state_dict = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {str(path)!r} cannot be read: {exc}") from None
    with torch.device("meta"):
        model = DfDNet(config)
    check_state_dict(model, state_dict, repr(str(path)))
    model.load_state_dict(state_dict, strict=True, assign=True)
    return model.to(device=device, dtype=torch.float32).eval()


def load_model(path: PathLike, device: str | torch.device = "cpu") -> DfDNet:
    """Load one of our ``.safetensors`` checkpoints or a FOSSA ``.pth`` / ``.pt``, by suffix.

    Raises:
        CheckpointError: any load failure, or an unknown suffix.
        ConfigError: an invalid stored config.
    """
    suffix = Path(path).suffix.lower()
    if suffix == ".safetensors":
        return load_checkpoint(path, device)
    if suffix in (".pth", ".pt"):
        return load_fossa_checkpoint(path, device=device)
    raise CheckpointError(
        f"checkpoint {str(path)!r}: unknown suffix {suffix!r}; "
        "expected .safetensors (dfdnet) or .pth/.pt (FOSSA)"
    )


def _safetensors_metadata(path: Path) -> dict[str, str]:
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist or is not a file")
    try:
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            return dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"checkpoint {str(path)!r} is truncated or not a safetensors file: {exc}"
        ) from None
