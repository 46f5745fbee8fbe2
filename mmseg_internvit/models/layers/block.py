"""The InternViT patch embedding and transformer block."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from timm.layers import DropPath, LayerScale, Mlp

from .attention import Attention, WindowAttention
from .norm import build_norm


class PatchEmbed(nn.Module):
    """Non-overlapping patch projection that pads H and W up to the patch size.

    Args:
        patch_size: Patch side in pixels.
        in_channels: Image channels.
        embed_dims: Token width.
    """

    def __init__(self, patch_size: int, in_channels: int, embed_dims: int) -> None:
        super().__init__()
        self.patch_size = patch_size
        self.proj = nn.Conv2d(in_channels, embed_dims, patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, Tuple[int, int]]:
        H, W = x.shape[-2:]
        p = self.patch_size
        # Zero padding on the right/bottom: after mean/std normalisation zero is
        # the mean colour, the least surprising filler for the last patch row.
        x = F.pad(x, (0, -W % p, 0, -H % p))
        x = self.proj(x)
        return x.flatten(2).transpose(1, 2), (x.shape[2], x.shape[3])


class InternViTBlock(nn.Module):
    """Pre-norm transformer block with layer scale and stochastic depth.

    Args:
        dim: Token width.
        num_heads: Attention heads.
        mlp_hidden: Hidden width of the GELU MLP.
        qkv_bias: Bias on the qkv projection.
        qk_normalization: Whole-width RMS qk-norm.
        norm_type: ``'rms'`` or ``'ln'`` for norm1/norm2.
        layer_scale_init: Initial value of the layer-scale gammas.
        drop_path: Stochastic depth rate of this block.
        attn_impl: See :class:`Attention`.
        window_size: Attend within windows of this many tokens per side
            (:class:`WindowAttention`); None attends globally.
    """

    def __init__(self, dim: int, num_heads: int, mlp_hidden: int, qkv_bias: bool,
                 qk_normalization: bool, norm_type: str, layer_scale_init: float,
                 drop_path: float = 0.0, attn_impl: str = 'sdpa',
                 window_size: Optional[int] = None) -> None:
        super().__init__()
        self.norm1 = build_norm(norm_type, dim)
        attn_args = dict(qkv_bias=qkv_bias, qk_normalization=qk_normalization,
                         attn_impl=attn_impl)
        self.attn = (WindowAttention(dim, num_heads, window_size, **attn_args)
                     if window_size else Attention(dim, num_heads, **attn_args))
        self.ls1 = LayerScale(dim, init_values=layer_scale_init)
        self.norm2 = build_norm(norm_type, dim)
        self.mlp = Mlp(dim, hidden_features=mlp_hidden, act_layer=nn.GELU)
        self.ls2 = LayerScale(dim, init_values=layer_scale_init)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, grid: Optional[Tuple[int, int]] = None) -> torch.Tensor:
        """Tokens ``(B, N, C)`` of the patch grid ``grid`` (needed by windowed blocks)."""
        x = x + self.drop_path(self.ls1(self.attn(self.norm1(x), grid)))
        return x + self.drop_path(self.ls2(self.mlp(self.norm2(x))))
