"""Multi-head self-attention with InternViT's optional whole-width qk-norm."""
import torch
import torch.nn as nn
import torch.nn.functional as F

from .norm import RMSNorm

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
        self.qk_normalization = qk_normalization
        if qk_normalization:
            self.q_norm = RMSNorm(dim, eps=norm_eps)
            self.k_norm = RMSNorm(dim, eps=norm_eps)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=-1)
        if self.qk_normalization:
            q, k = self.q_norm(q), self.k_norm(k)
        q, k, v = (t.view(B, N, self.num_heads, self.head_dim).transpose(1, 2)
                   for t in (q, k, v))
        if self.attn_impl == 'sdpa':
            out = F.scaled_dot_product_attention(q, k, v)
        else:
            scores = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
            out = scores.softmax(dim=-1) @ v
        return self.proj(out.transpose(1, 2).reshape(B, N, C))
