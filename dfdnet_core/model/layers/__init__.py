"""Building blocks of DfDNet, one per file (DINOv2 / DPT layout, FOSSA's attribute names)."""

from dfdnet_core.model.layers.attention import Attention
from dfdnet_core.model.layers.block import Block
from dfdnet_core.model.layers.feature_fusion import FeatureFusionBlock, ResidualConvUnit
from dfdnet_core.model.layers.feed_forward import GatedFeedForward
from dfdnet_core.model.layers.focus_encoder import FocusDistanceEncoder
from dfdnet_core.model.layers.layer_scale import LayerScale
from dfdnet_core.model.layers.mlp import Mlp
from dfdnet_core.model.layers.patch_embed import PatchEmbed

__all__ = [
    "Attention",
    "Block",
    "FeatureFusionBlock",
    "FocusDistanceEncoder",
    "GatedFeedForward",
    "LayerScale",
    "Mlp",
    "PatchEmbed",
    "ResidualConvUnit",
]
