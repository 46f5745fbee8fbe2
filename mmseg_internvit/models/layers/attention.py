"""Multi-head self-attention with InternViT's optional whole-width qk-norm: global and windowed."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from .norm import RMSNorm
from .window import Grid, clamp_window, window_padding_mask, window_partition, window_unpartition

ATTN_IMPLS = ('sdpa', 'naive')


class Attention(nn.Module):
    """Self-attention over tokens ``(B, N, C)``.

    Args:
        dim: Token width C.
        num_heads: Number of heads; must divide ``dim``.
        qkv_bias: Whether the fused qkv projection has a bias.
        qk_normalization: RMS-normalise q and k over the whole width C before
            splitting heads (InternViT-6B), not per head.
        norm_eps: Epsilon of the qk norms.
        attn_impl: ``'sdpa'`` uses ``F.scaled_dot_product_attention`` (fused
            flash / memory-efficient kernels where available); ``'naive'``
            materialises the full N x N score matrix, as the original
            segmentation code did, and exists as a benchmark reference.
    """

    def __init__(self,
                 dim: int,
                 num_heads: int,
                 qkv_bias: bool = False,
                 qk_normalization: bool = False,
                 norm_eps: float = 1e-6,
                 attn_impl: str = 'sdpa') -> None:
        super().__init__()
        if dim % num_heads != 0:
            raise ValueError(f'embed_dims={dim} is not divisible by num_heads={num_heads}')
        if attn_impl not in ATTN_IMPLS:
            raise ValueError(f'attn_impl must be one of {ATTN_IMPLS}, got {attn_impl!r}')
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.attn_impl = attn_impl
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = RMSNorm(dim, eps=norm_eps) if qk_normalization else nn.Identity()
        self.k_norm = RMSNorm(dim, eps=norm_eps) if qk_normalization else nn.Identity()
        self.proj = nn.Linear(dim, dim)

    def project(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values ``(B, N, C)`` of tokens ``(B, N, C)`` (qk-norm applied)."""
        q, k, v = self.qkv(x).split(x.shape[-1], dim=-1)
        return self.q_norm(q), self.k_norm(k), v

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               key_mask: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Multi-head attention of ``q (B, Nq, C)`` over ``k, v (B, Nk, C)``, before ``proj``.

        Args:
            q: Queries.
            k: Keys.
            v: Values.
            key_mask: Optional bool ``(B, Nk)``: False keys are ignored.

        Returns:
            ``(B, Nq, C)``.
        """
        B, Nq, C = q.shape
        q, k, v = (t.reshape(B, -1, self.num_heads, self.head_dim).transpose(1, 2)
                   for t in (q, k, v))
        mask = None if key_mask is None else key_mask[:, None, None, :]
        if self.attn_impl == 'sdpa':
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
        else:
            scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
            if mask is not None:
                scores = scores.masked_fill(~mask, float('-inf'))
            out = scores.softmax(dim=-1) @ v
        return out.transpose(1, 2).reshape(B, Nq, C)

    def forward(self, x: torch.Tensor, grid: Optional[Grid] = None) -> torch.Tensor:
        """Attend over all tokens ``(B, N, C)``; ``grid`` is unused (global attention)."""
        return self.proj(self.attend(*self.project(x)))


class WindowAttention(Attention):
    """Attention within non-overlapping windows of the patch grid (ViTDet style).

    Tokens are ``P`` prefix tokens (InternViT: the cls token) followed by the
    ``h x w`` patch grid, ``P = N - h * w``. Patch tokens attend to the tokens
    of their window and to the prefix tokens; prefix tokens attend to every
    token, as in a global block. Every token keeps the cls token in view as
    in pretraining, the cls token stays a well-defined global summary, and
    each block still updates every token (the pattern of Longformer's global
    tokens).

    The grid is zero-padded right/bottom to whole windows and the padding is
    removed afterwards. Unlike SAM and ViTDet, padding tokens are masked out
    of the keys: with stride-14 grids the padding can fill most of the last
    window row (a 1024-px image gives 74 tokens per side: 10 of the 14 rows
    of the last windows are padding), and unmasked zero keys would dilute
    the attention of border tokens by an amount that depends on the image
    size. Windows never exceed the grid (see :func:`clamp_window`), so when
    one window covers the grid no padding exists and the block is global
    attention, computed by the same code path and equal to it bit for bit.

    Args:
        dim: Token width C.
        num_heads: Number of heads.
        window_size: Window side in tokens.
        **kwargs: :class:`Attention` arguments (``qkv_bias``, ...).
    """

    def __init__(self, dim: int, num_heads: int, window_size: int, **kwargs) -> None:
        super().__init__(dim, num_heads, **kwargs)
        self.window_size = window_size

    def forward(self, x: torch.Tensor, grid: Optional[Grid] = None) -> torch.Tensor:
        """Windowed attention over tokens ``(B, P + h * w, C)`` of the patch grid ``(h, w)``."""
        if grid is None:
            raise ValueError('WindowAttention needs the patch grid (h, w) of its tokens')
        window = clamp_window(self.window_size, grid)
        if window == tuple(grid):
            return super().forward(x)
        B = x.shape[0]
        prefix = x.shape[1] - grid[0] * grid[1]
        q, k, v = self.project(x)
        prefix_out = self.attend(q[:, :prefix], k, v)
        (qw, padded), (kw, _), (vw, _) = (window_partition(t[:, prefix:], grid, window)
                                          for t in (q, k, v))
        num_windows = qw.shape[0] // B
        # Each window's keys: the prefix tokens of its image, then its own tokens.
        kw = torch.cat([k[:, :prefix].repeat_interleave(num_windows, dim=0), kw], dim=1)
        vw = torch.cat([v[:, :prefix].repeat_interleave(num_windows, dim=0), vw], dim=1)
        key_mask = None
        if padded != tuple(grid):
            real = window_padding_mask(grid, window, x.device)
            key_mask = torch.cat([real.new_ones(num_windows, prefix), real], dim=1).repeat(B, 1)
        patch_out = window_unpartition(self.attend(qw, kw, vw, key_mask), grid, window, padded)
        return self.proj(torch.cat([prefix_out, patch_out], dim=1))
