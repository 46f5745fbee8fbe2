"""Reusable layers: norms, global and windowed attention, window helpers, the
InternViT block and patch embedding, position-embedding resizing."""
from .attention import ATTN_IMPLS, Attention, WindowAttention
from .block import InternViTBlock, PatchEmbed, checkpoint_block, drop_path_scales
from .norm import NORM_TYPES, RMSNorm, build_norm
from .pos_embed import bicubic_matrix, resize_pos_embed
from .window import clamp_window, window_padding_mask, window_partition, window_unpartition

__all__ = ['ATTN_IMPLS', 'Attention', 'WindowAttention', 'InternViTBlock', 'PatchEmbed',
           'checkpoint_block', 'drop_path_scales',
           'NORM_TYPES', 'RMSNorm', 'build_norm', 'bicubic_matrix', 'resize_pos_embed',
           'clamp_window', 'window_padding_mask', 'window_partition', 'window_unpartition']
