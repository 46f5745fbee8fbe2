"""InternViT backbones for OpenMMLab 2.x (mmsegmentation 1.x, mmdetection 3.x).

Importing the package registers every module in the ``mmseg_internvit`` scope
and in mmseg's / mmdet's default scopes (where installed), and allow-lists the
globals of mmengine's own checkpoints for torch's safe loading.
"""
from .checkpoint import allow_mmengine_checkpoint_globals
from .registry import register_into_default_scopes
from . import models  # noqa: F401  (registers the models)

__version__ = '0.1.0'

allow_mmengine_checkpoint_globals()
register_into_default_scopes()
