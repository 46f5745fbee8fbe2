"""Checkpoint reading (HF, upstream .pth, mmengine), key maps and writing."""
from .key_maps import FORMATS, backbone_key_map, detect_format
from .mmengine_loader import register_safetensors_loader
from .loader import CheckpointMismatchError, load_backbone_weights
from .readers import CheckpointReadError, TensorSource, open_checkpoint
from .safe_globals import allow_mmengine_checkpoint_globals
from .writer import convert_to_safetensors, save_backbone_safetensors

__all__ = [
    'FORMATS', 'backbone_key_map', 'detect_format', 'CheckpointMismatchError',
    'load_backbone_weights', 'CheckpointReadError', 'TensorSource', 'open_checkpoint',
    'allow_mmengine_checkpoint_globals', 'convert_to_safetensors',
    'save_backbone_safetensors', 'register_safetensors_loader'
]
