"""Reusable layers: norms, global and windowed attention, window helpers."""
from .attention import ATTN_IMPLS, Attention, WindowAttention
from .norm import NORM_TYPES, RMSNorm, build_norm
from .window import clamp_window, window_padding_mask, window_partition, window_unpartition

__all__ = ['ATTN_IMPLS', 'Attention', 'WindowAttention', 'NORM_TYPES', 'RMSNorm', 'build_norm',
           'clamp_window', 'window_padding_mask', 'window_partition', 'window_unpartition']
