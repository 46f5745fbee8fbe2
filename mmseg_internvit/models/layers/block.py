"""The InternViT patch embedding and transformer block."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from timm.layers import LayerScale, Mlp, drop_path

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


def drop_path_scales(x: torch.Tensor, rate: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """Stochastic-depth factors of one block's two residual branches, for the batch of ``x``.

    Each is timm's ``drop_path`` applied to ones of shape ``(B, 1, ..., 1)``: 0 for
    a dropped sample, ``1 / (1 - rate)`` for a kept one (ones when ``rate`` is 0).
    They are drawn by the caller of the block, outside any compiled region and
    any checkpoint: blocks that differ only in their rate then share one
    compiled graph (a rate inside the block is a constant that torch.compile
    specializes on, one graph per block), and a checkpoint's recomputation
    multiplies by the very same masks.

    Args:
        x: The block's input tokens ``(B, N, C)``.
        rate: The block's stochastic-depth rate.
    """
    shape = (x.shape[0],) + (1,) * (x.dim() - 1)
    # Two tensors even at rate 0 (where drop_path returns its input): one
    # tensor passed twice would compile a graph of its own.
    return tuple(drop_path(x.new_ones(shape), rate, training=True) for _ in range(2))


def checkpoint_block(block: nn.Module, x: torch.Tensor, grid: Tuple[int, int],
                     drop_scales: Optional[Tuple[torch.Tensor, torch.Tensor]] = None
                     ) -> torch.Tensor:
    """Run ``block(x, grid, drop_scales)`` keeping only its inputs for the backward, which
    recomputes the block.

    Under ``torch.compile`` the checkpoint is traced into the compiled graph
    (the compiler recomputes the block in its backward graph); eagerly it is
    torch's non-reentrant checkpoint.
    """
    # The grid through a closure, not as an argument of the checkpoint: a
    # traced checkpoint guards on its int arguments (torch 2.11 recompiled at
    # the second image size), while a closure's grid is only guarded where
    # used (windowed blocks).
    return cp.checkpoint(lambda tokens: block(tokens, grid, drop_scales), x,
                         use_reentrant=False)


class InternViTBlock(nn.Module):
    """Pre-norm transformer block with layer scale and stochastic depth.

    Stochastic depth takes factors from the caller (``drop_scales`` of
    :meth:`forward`, drawn with :func:`drop_path_scales` from
    ``drop_path_rate``), as :meth:`InternViT.run_blocks` does in training.

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
        self.drop_path_rate = drop_path

    def forward(self, x: torch.Tensor, grid: Optional[Tuple[int, int]] = None,
                drop_scales: Optional[Tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
        """Tokens ``(B, N, C)`` of the patch grid ``grid`` (needed by windowed blocks).

        ``drop_scales``: per-sample factors of the attention and MLP branches
        (:func:`drop_path_scales`); None keeps both branches whole.
        """
        attn = self.ls1(self.attn(self.norm1(x), grid))
        x = x + (attn if drop_scales is None else attn * drop_scales[0])
        mlp = self.ls2(self.mlp(self.norm2(x)))
        return x + (mlp if drop_scales is None else mlp * drop_scales[1])
