"""Models of the mmseg_internvit scope.

Importing this package defines the backbone and neck, which need only torch,
timm and mmengine. The ViT-Adapter (mmcv), the decode head and the segmentor
(mmseg) live in their own modules, imported by
:func:`mmseg_internvit.register_all_modules` where those libraries are
installed, so the backbone also serves mmdet-only and bare-torch machines.
"""
from .backbones import *  # noqa: F401,F403
from .necks import *  # noqa: F401,F403
