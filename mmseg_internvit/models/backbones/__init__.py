"""Backbones: InternViT (torch, timm and mmengine only). The ViT-Adapter, which
needs mmcv's deformable attention, is :mod:`.vit_adapter`."""
from ..layers import InternViTBlock, resize_pos_embed
from .arch_zoo import ARCH_ZOO
from .intern_vit import InternViT

__all__ = ['ARCH_ZOO', 'InternViT', 'InternViTBlock', 'resize_pos_embed']
