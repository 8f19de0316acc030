"""Attention across the images of a focal stack (FOSSA's "motion module" layout).

At every patch position the N tokens of the N images form one sequence; each image's focus-distance
embedding is added before q, k and v are formed. There is no positional or index encoding over the
stack, so the module is permutation-equivariant over (image, focus distance) pairs and works for any
N >= 1.

Token layout used throughout: (B*N, L, C) with the images of one stack in consecutive rows
(row b*N + n) and L patch tokens per image (no class token).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dfdnet_core.model.layers.feed_forward import GatedFeedForward
from dfdnet_core.model.layers.focus_encoder import FocusDistanceEncoder

STACK_NORM_EPS = 1e-6
"""GroupNorm epsilon at the module entry. (The LayerNorms inside use PyTorch's default 1e-5.)"""


class StackAttention(nn.Module):
    """Focus-embedded multi-head attention over the N images at each patch position."""

    def __init__(self, dim: int, num_heads: int, focus_hidden_dim: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(dim, dim, bias=False)
        self.to_v = nn.Linear(dim, dim, bias=False)
        self.to_out = nn.ModuleList([nn.Linear(dim, dim), nn.Dropout(0.0)])
        self.fd_encoder = FocusDistanceEncoder(dim, focus_hidden_dim)

    def forward(self, z: torch.Tensor, focus_canonical: torch.Tensor) -> torch.Tensor:
        """Attend across the stack.

        Args:
            z: (B*N, L, C) normalised tokens.
            focus_canonical: (B, N) canonical focus distance of each image.

        Returns:
            (B*N, L, C) attention output (without the residual).
        """
        b, n = focus_canonical.shape
        _, length, c = z.shape
        heads, head_dim = self.num_heads, c // self.num_heads
        z = z + self.fd_encoder(focus_canonical).reshape(b * n, 1, c)
        # (B, L, N, C): one sequence of N images per patch position.
        z = z.reshape(b, n, length, c).transpose(1, 2).contiguous()

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.reshape(b * length, n, heads, head_dim).transpose(1, 2)

        out = F.scaled_dot_product_attention(
            split(self.to_q(z)), split(self.to_k(z)), split(self.to_v(z))
        )
        # (B*L, heads, N, d) -> (B, N, L, heads, d) -> (B*N, L, C)
        out = (
            out.reshape(b, length, heads, n, head_dim)
            .permute(0, 3, 1, 2, 4)
            .reshape(b * n, length, c)
        )
        for layer in self.to_out:
            out = layer(out)
        return out


class StackTransformerBlock(nn.Module):
    """Pre-norm stack-attention sub-blocks, then a pre-norm gated feed-forward, all residual."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        attention_layers: int,
        focus_hidden_dim: int,
        ff_hidden_dim: int,
    ) -> None:
        super().__init__()
        self.attention_blocks = nn.ModuleList(
            [StackAttention(dim, num_heads, focus_hidden_dim) for _ in range(attention_layers)]
        )
        self.norms = nn.ModuleList([nn.LayerNorm(dim) for _ in range(attention_layers)])
        self.ff = GatedFeedForward(dim, ff_hidden_dim)
        self.ff_norm = nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor, focus_canonical: torch.Tensor) -> torch.Tensor:
        for attention, norm in zip(self.attention_blocks, self.norms, strict=True):
            tokens = tokens + attention(norm(tokens), focus_canonical)
        update: torch.Tensor = self.ff(self.ff_norm(tokens))
        return tokens + update


class StackTransformer(nn.Module):
    """GroupNorm (per image, over all positions) -> proj_in -> block -> proj_out, plus the input."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        norm_groups: int,
        attention_layers: int,
        focus_hidden_dim: int,
        ff_hidden_dim: int,
    ) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(norm_groups, dim, eps=STACK_NORM_EPS, affine=True)
        self.proj_in = nn.Linear(dim, dim)
        self.transformer_blocks = nn.ModuleList(
            [
                StackTransformerBlock(
                    dim, num_heads, attention_layers, focus_hidden_dim, ff_hidden_dim
                )
            ]
        )
        self.proj_out = nn.Linear(dim, dim)

    def forward(self, patches: torch.Tensor, focus_canonical: torch.Tensor) -> torch.Tensor:
        """(B*N, L, C) patch tokens and (B, N) focus distances -> (B*N, L, C)."""
        hidden = self.norm(patches.transpose(1, 2)).transpose(1, 2)
        hidden = self.proj_in(hidden)
        for block in self.transformer_blocks:
            hidden = block(hidden, focus_canonical)
        out: torch.Tensor = self.proj_out(hidden)
        return out + patches


class StackAttentionModule(nn.Module):
    """Wraps :class:`StackTransformer` for a ViT stream; the class token skips it.

    The attribute is called ``temporal_transformer`` as in FOSSA's checkpoints.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int,
        norm_groups: int,
        attention_layers: int,
        focus_hidden_dim: int,
        ff_hidden_dim: int,
    ) -> None:
        super().__init__()
        self.temporal_transformer = StackTransformer(
            dim, num_heads, norm_groups, attention_layers, focus_hidden_dim, ff_hidden_dim
        )

    def forward(self, tokens: torch.Tensor, focus_canonical: torch.Tensor) -> torch.Tensor:
        """(B*N, 1+L, C) tokens with the class token first -> same shape."""
        patches = self.temporal_transformer(tokens[:, 1:], focus_canonical)
        return torch.cat((tokens[:, :1], patches), dim=1)
