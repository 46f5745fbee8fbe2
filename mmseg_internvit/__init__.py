"""InternViT backbones for OpenMMLab 2.x (mmsegmentation 1.x, mmdetection 3.x).

Importing the package registers every module in the ``mmseg_internvit`` scope
and in mmseg's / mmdet's default scopes (where installed), and allow-lists the
globals of mmengine's own checkpoints for torch's safe loading, and teaches
mmengine's checkpoint loader to read ``.safetensors`` model files.
"""
from .quiet_deepspeed import name_cpu_accelerator_for_deepspeed

name_cpu_accelerator_for_deepspeed()  # before mmengine imports DeepSpeed

from .checkpoint import (allow_mmengine_checkpoint_globals,  # noqa: E402
                         register_safetensors_loader)
from .registry import register_into_default_scopes  # noqa: E402
from . import datasets, engine, models  # noqa: E402,F401  (registers their modules)

__version__ = '0.1.0'

allow_mmengine_checkpoint_globals()
register_safetensors_loader()
register_into_default_scopes()
