"""Backbones: InternViT."""
from .intern_vit import ARCH_ZOO, InternViT, InternViTBlock, resize_pos_embed

__all__ = ['ARCH_ZOO', 'InternViT', 'InternViTBlock', 'resize_pos_embed']
