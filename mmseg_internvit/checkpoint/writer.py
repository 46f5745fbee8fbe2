"""Write state dicts (backbone or whole model) as safetensors files of this project."""
import os
import tempfile
from typing import Mapping

import torch
from safetensors.torch import save_file

from .key_maps import backbone_key_map
from .readers import open_checkpoint

FORMAT_TAG = 'mmseg_internvit-backbone'


def check_output_path(dst: str) -> str:
    """Validate an output path before any (possibly long) read; return its folder."""
    if not str(dst).endswith('.safetensors'):
        raise ValueError(f'output {dst} must end with .safetensors')
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'Output folder {folder} does not exist; create it first.')
    return folder


def save_backbone_safetensors(state: Mapping[str, torch.Tensor], dst: str) -> None:
    """Save ``state`` to ``dst`` atomically: temp file, then rename."""
    folder = check_output_path(dst)
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    fd, tmp = tempfile.mkstemp(suffix='.safetensors.tmp', dir=folder)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={'format': FORMAT_TAG})
        os.replace(tmp, dst)
    except BaseException:
        os.unlink(tmp)
        raise


def convert_to_safetensors(src: str, dst: str, dtype: torch.dtype = None) -> str:
    """Convert any supported checkpoint's backbone to a safetensors file.

    Returns:
        The format detected in ``src``.
    """
    check_output_path(dst)
    source = open_checkpoint(src)
    fmt, mapping, _ = backbone_key_map(source.keys())
    if 'cls_token' not in mapping:
        raise ValueError(f'{src} (format {fmt!r}) has no InternViT cls_token: not an '
                         'InternViT checkpoint, or its backbone is under a prefix other '
                         "than 'backbone.'.")
    state = {}
    for ours, key in mapping.items():
        tensor = source[key]
        state[ours] = tensor.to(dtype) if dtype is not None else tensor
    save_backbone_safetensors(state, dst)
    return fmt
