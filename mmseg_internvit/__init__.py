"""InternViT backbones for OpenMMLab 2.x (mmsegmentation 1.x, mmdetection 3.x).

Importing the package, or any module of it, only defines things: nothing is
registered with mmseg/mmdet and no process-wide setting changes until
:func:`register_all_modules` is called (configs do it by listing
``mmseg_internvit.plugin`` in ``custom_imports``; the tools and ``Segmenter``
call it themselves).
"""
from .registration import register_all_modules

__version__ = '0.1.0'

__all__ = ['register_all_modules', '__version__']
