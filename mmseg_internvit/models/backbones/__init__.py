"""Backbones: InternViT."""
from .intern_vit import ARCH_ZOO, InternViT, InternViTBlock, resize_pos_embed
from .vit_adapter import InternViTAdapter

__all__ = ['ARCH_ZOO', 'InternViT', 'InternViTBlock', 'resize_pos_embed']
