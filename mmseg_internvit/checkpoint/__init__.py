"""Checkpoint reading (HF remote code, transformers, upstream .pth and released
segmentors, mmengine), key maps, arch detection, the backbone and whole-model
loaders, and writing. (The mmengine adaptations, :mod:`.mmengine_loader` and
:mod:`.safe_globals`, are applied by ``register_all_modules``.)"""
from .arch_detect import read_arch
from .key_maps import FORMATS, KeyMap, backbone_key_map, detect_format
from .loader import CheckpointMismatchError, load_backbone_weights
from .model_loader import check_checkpoint_fits, load_model_weights
from .readers import CheckpointReadError, TensorSource, open_checkpoint
from .writer import (convert_segmentor, convert_to_safetensors, save_safetensors,
                     save_model_checkpoint)

__all__ = [
    'FORMATS', 'KeyMap', 'backbone_key_map', 'detect_format', 'CheckpointMismatchError',
    'load_backbone_weights', 'load_model_weights', 'check_checkpoint_fits', 'read_arch',
    'CheckpointReadError', 'TensorSource', 'open_checkpoint', 'convert_to_safetensors',
    'convert_segmentor', 'save_safetensors', 'save_model_checkpoint'
]
