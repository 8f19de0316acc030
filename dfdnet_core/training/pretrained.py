"""Initialise DfDNet's ViT encoder from a DINOv2 or Depth-Anything-V2 checkpoint file.

Accepted files: a ``.safetensors`` file, or a ``.pth``/``.pt`` read with ``torch.load(weights_only=True)``
(a pickle that asks for code is refused, nothing runs); the state dict may sit under ``"model"`` or
``"state_dict"``. Key rules: every ``module.`` is removed; DINOv2 keys (``blocks.0.attn.qkv.weight``,
``pos_embed``, ...) get the ``pretrained.`` prefix of our encoder; Depth-Anything-V2 keys
(``pretrained.*``, ``depth_head.*``) are used as they are. A tensor is loaded when our model has
the key with the same shape; the position table is resampled (bicubic) when only its grid differs.
Everything else (other widths, DPT head shapes, stack-attention modules that DINOv2 lacks) is
skipped and reported.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from dfdnet_core.errors import CheckpointError

_DINO_ROOTS = ("blocks.", "patch_embed.", "norm.", "cls_token", "pos_embed", "mask_token", "register_tokens")


@dataclass
class InitReport:
    """What :func:`init_from_pretrained` did.

    Attributes:
        loaded: our keys that received a tensor.
        resampled: our keys that were loaded after resampling (position table).
        skipped: checkpoint keys not used, with the reason.
        untouched: our keys the checkpoint did not provide (they keep their fresh initialisation).
    """

    loaded: list[str] = field(default_factory=list)
    resampled: list[str] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    untouched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line: counts and the first few skipped keys."""
        first = list(self.skipped.items())[:3]
        return (
            f"loaded {len(self.loaded)} tensors ({len(self.resampled)} resampled), skipped "
            f"{len(self.skipped)} checkpoint keys {first!r}, {len(self.untouched)} model keys left as initialised"
        )


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Tensors of a ``.safetensors`` or weights-only ``.pth``/``.pt`` file, ``module.`` stripped.

    Raises:
        CheckpointError: missing, unreadable, unsafe (code in the pickle) or without tensors.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"init checkpoint {str(path)!r} does not exist or is not a file")
    try:
        if path.suffix.lower() == ".safetensors":
            from safetensors.torch import load_file

            payload: object = load_file(str(path))
        else:
            payload = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "malformed pickle"
        raise CheckpointError(
            f"refused init checkpoint {str(path)!r}: not a weights-only file (nothing in it was run): {first}"
        ) from None
    except Exception as exc:  # safetensors, EOF, zip and OS errors all mean "unreadable"
        raise CheckpointError(f"init checkpoint {str(path)!r} cannot be read: {type(exc).__name__}: {exc}") from None
    if isinstance(payload, Mapping):
        for key in ("model", "state_dict"):
            inner = payload.get(key)
            if isinstance(inner, Mapping):
                payload = inner
                break
    if not isinstance(payload, Mapping) or not any(isinstance(v, torch.Tensor) for v in payload.values()):
        raise CheckpointError(f"init checkpoint {str(path)!r} holds no state dict of tensors")
    return {
        str(k).replace("module.", ""): v for k, v in payload.items() if isinstance(v, torch.Tensor)
    }


def _our_key(key: str) -> str:
    if key.startswith(("pretrained.", "depth_head.")):
        return key
    if key.startswith(_DINO_ROOTS):
        return "pretrained." + key
    return key


def _resample_pos_embed(source: torch.Tensor, target_shape: torch.Size) -> torch.Tensor | None:
    """(1, 1 + g*g, C) -> (1, 1 + G*G, C) bicubic on the grid; None if not square or C differs."""
    if source.dim() != 3 or len(target_shape) != 3 or source.shape[-1] != target_shape[-1]:
        return None
    g_src, g_dst = math.isqrt(source.shape[1] - 1), math.isqrt(target_shape[1] - 1)
    if g_src * g_src != source.shape[1] - 1 or g_dst * g_dst != target_shape[1] - 1:
        return None
    c = source.shape[-1]
    grid = source[:, 1:].reshape(1, g_src, g_src, c).permute(0, 3, 1, 2).float()
    grid = F.interpolate(grid, size=(g_dst, g_dst), mode="bicubic", align_corners=False)
    return torch.cat([source[:, :1].float(), grid.permute(0, 2, 3, 1).reshape(1, g_dst * g_dst, c)], 1)


def init_from_pretrained(model: nn.Module, path: str | Path) -> InitReport:
    """Copy every matching tensor of a DINOv2 / Depth-Anything-V2 file into ``model`` (see module doc).

    Raises:
        CheckpointError: the file cannot be read safely, or not a single tensor matched.
    """
    source = read_state_dict(path)
    ours = model.state_dict()
    report = InitReport()
    updates: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        target = _our_key(key)
        if target not in ours:
            report.skipped[key] = "no such key in the model"
            continue
        want = ours[target].shape
        if value.shape == want:
            updates[target] = value
        elif target.endswith("pos_embed") and (resampled := _resample_pos_embed(value, want)) is not None:
            updates[target] = resampled
            report.resampled.append(target)
        else:
            report.skipped[key] = f"shape {tuple(value.shape)} vs model {tuple(want)}"
    if not updates:
        raise CheckpointError(
            f"init checkpoint {str(path)!r}: no tensor matches the model (first keys: {list(source)[:5]!r})"
        )
    with torch.no_grad():
        for key, value in updates.items():
            ours[key].copy_(value.to(ours[key].dtype))
    report.loaded = sorted(updates)
    report.untouched = sorted(set(ours) - set(updates))
    return report
