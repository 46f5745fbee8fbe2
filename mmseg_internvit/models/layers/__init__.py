"""Reusable layers: norms and attention."""
from .attention import ATTN_IMPLS, Attention
from .norm import NORM_TYPES, RMSNorm, build_norm

__all__ = ['ATTN_IMPLS', 'Attention', 'NORM_TYPES', 'RMSNorm', 'build_norm']
