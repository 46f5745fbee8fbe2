"""Load a checkpoint of any supported format into an InternViT, strictly."""
import re
from typing import Dict, List, Optional

import torch
import torch.nn as nn

from .key_maps import backbone_key_map
from .readers import TensorSource, open_checkpoint

_BLOCK_RE = re.compile(r'^blocks\.(\d+)\.')
_SHOWN = 8  # keys listed per category in an error message


class CheckpointMismatchError(ValueError):
    """Checkpoint and model disagree on keys or shapes; nothing was loaded."""


def _describe_checkpoint(mapping: Dict[str, str], source: TensorSource) -> Optional[str]:
    """Depth/width/grid of the InternViT stored in a checkpoint, for hints."""
    blocks = {int(m.group(1)) for k in mapping if (m := _BLOCK_RE.match(k))}
    if 'cls_token' not in mapping or not blocks:
        return None
    width = source.shape(mapping['cls_token'])[-1]
    text = f'{max(blocks) + 1} blocks of width {width}'
    if 'pos_embed' in mapping:
        tokens = source.shape(mapping['pos_embed'])[1] - 1
        side = int(round(tokens**0.5))
        text += f', position grid {side}x{side} ({side * 14}px pretraining at patch 14)'
    return text


def _arch_hint(model: nn.Module, stored: Optional[str]) -> str:
    built = (f'The model was built with {getattr(model, "num_layers", "?")} blocks of width '
             f'{getattr(model, "embed_dims", "?")}')
    if hasattr(model, 'pretrain_grid'):
        g = model.pretrain_grid
        built += f', position grid {g[0]}x{g[1]}'
    if stored is None:
        return built + '. Is this an InternViT checkpoint?'
    return (f'{built}; the checkpoint has {stored}. Choose the matching arch '
            "('6b': 48 blocks/224px, '6b-448': 45 blocks/448px, '300m': 24 blocks "
            'of width 1024/448px) or the matching checkpoint.')


def _shorten(keys: List[str]) -> str:
    keys = sorted(keys)
    more = f' ... (+{len(keys) - _SHOWN} more)' if len(keys) > _SHOWN else ''
    return ', '.join(keys[:_SHOWN]) + more


def load_backbone_weights(model: nn.Module, path: str, prefix: str = '') -> str:
    """Copy every backbone tensor of ``path`` into ``model``, or raise.

    Tensors are read one at a time and copied into the already-allocated
    parameters (cast to their dtype), so peak memory is the model plus one
    tensor. Every key and shape is checked before anything is copied: a
    mismatch raises :class:`CheckpointMismatchError` naming the keys and the
    likely wrong ``arch``, and leaves the model untouched.

    Args:
        model: An InternViT (or any module whose state dict uses our names).
        path: Checkpoint file or Hugging Face model folder.
        prefix: Backbone prefix inside an mmengine checkpoint (auto if empty).

    Returns:
        The detected checkpoint format.
    """
    source = open_checkpoint(path)
    fmt, mapping, _ = backbone_key_map(source.keys(), prefix=prefix)
    targets = model.state_dict(keep_vars=True)
    missing = [k for k in targets if k not in mapping]
    unexpected = [mapping[k] for k in mapping if k not in targets]
    mismatched = []
    for name, tensor in targets.items():
        if name in mapping:
            stored = source.shape(mapping[name])
            if stored != tuple(tensor.shape):
                mismatched.append(f'{mapping[name]}: checkpoint {stored} '
                                  f'vs model {tuple(tensor.shape)}')
    if missing or unexpected or mismatched:
        parts = [f'Checkpoint {source.description} (format {fmt!r}) does not match the model.']
        if missing:
            parts.append(f'Missing {len(missing)} keys: {_shorten(missing)}.')
        if unexpected:
            parts.append(f'Unexpected {len(unexpected)} keys: {_shorten(unexpected)}.')
        if mismatched:
            parts.append(f'Shape mismatch in {len(mismatched)} tensors: {_shorten(mismatched)}.')
        parts.append(_arch_hint(model, _describe_checkpoint(mapping, source)))
        raise CheckpointMismatchError(' '.join(parts))
    with torch.no_grad():
        for name, tensor in targets.items():
            tensor.copy_(source[mapping[name]])
    return fmt
