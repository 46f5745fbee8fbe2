"""Backbones: InternViT, and the ViT-Adapter where mmcv (its deformable
attention) is installed; InternViT itself needs only torch, timm and mmengine."""
from importlib.util import find_spec

from .intern_vit import ARCH_ZOO, InternViT, InternViTBlock, resize_pos_embed

__all__ = ['ARCH_ZOO', 'InternViT', 'InternViTBlock', 'resize_pos_embed']

if find_spec('mmcv') is not None:
    from .vit_adapter import InternViTAdapter  # noqa: F401
    __all__.append('InternViTAdapter')
