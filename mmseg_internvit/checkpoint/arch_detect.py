"""Read an InternViT architecture from a checkpoint (``arch='auto'``).

The structure comes from the tensors themselves: width from ``cls_token``,
depth from the block indices, MLP width from ``fc1``, RMSNorm vs LayerNorm
from whether the block norms have a bias, qk-norm and qkv bias from whether
those tensors exist, the pretraining grid from ``pos_embed``. The head count
is not in any tensor: it comes from the ``config.json`` beside the checkpoint
(remote-code or transformers field names, nested under ``vision_config`` in
chat configs), else from the published widths, else the caller must give it.
Where a ``config.json`` and the tensors disagree, that is an error.
"""
import math
import re
from typing import Dict, Optional, Union

from .key_maps import backbone_key_map
from .readers import (CheckpointReadError, TensorSource, as_source, read_config_json,
                      renamed_source)

# Heads of the published InternViT widths (InternViT-6B: 3200, InternViT-300M: 1024).
HEADS_BY_WIDTH = {3200: 25, 1024: 16}
_BLOCK_RE = re.compile(r'^blocks\.(\d+)\.')
_NORM_NAMES = {'rms_norm': 'rms', 'layer_norm': 'ln'}
# Config fields (remote-code name, transformers' InternVLVisionConfig name) -> arch key.
_CONFIG_FIELDS = (
    ('embed_dims', ('hidden_size',)),
    ('num_layers', ('num_hidden_layers',)),
    ('num_heads', ('num_attention_heads',)),
    ('feedforward_channels', ('intermediate_size',)),
    ('qk_normalization', ('qk_normalization', 'use_qk_norm')),
    ('norm_type', ('norm_type',)),
    ('qkv_bias', ('qkv_bias', 'attention_bias')),
    ('layer_scale_init', ('layer_scale_init_value', 'initializer_factor')),
)
# Checked against the tensors when the config states them.
_STRUCTURAL = ('embed_dims', 'num_layers', 'feedforward_channels', 'qk_normalization',
               'norm_type', 'qkv_bias')


class UnknownHeadCountError(CheckpointReadError):
    """The checkpoint's width is no published model's and no ``config.json`` gives
    its head count (which no tensor holds).

    Attributes:
        path: The checkpoint.
        width: Its width.
    """

    def __init__(self, message: str, path: str, width: int) -> None:
        super().__init__(message)
        self.path = path
        self.width = width


def vision_config(config: Optional[dict]) -> Optional[dict]:
    """The vision-tower part of a ``config.json`` (chat configs nest it), if any."""
    if not config:
        return None
    nested = config.get('vision_config')
    found = nested if isinstance(nested, dict) else config
    return found if 'hidden_size' in found else None


def arch_from_config(config: dict) -> Dict[str, object]:
    """The arch keys a vision ``config.json`` states (only those it states)."""
    arch = {}
    for ours, names in _CONFIG_FIELDS:
        for name in names:
            if name in config:
                arch[ours] = config[name]
                break
    if 'norm_type' in arch:
        arch['norm_type'] = _NORM_NAMES.get(arch['norm_type'], arch['norm_type'])
    return arch


def arch_from_tensors(source: TensorSource, patch_size: int, where: str) -> Dict[str, object]:
    """Every arch key but ``num_heads`` and ``layer_scale_init``, from tensor names and shapes.

    Args:
        source: The checkpoint's backbone tensors under our names.
        patch_size: Patch side, to turn the position grid into pixels.
        where: The checkpoint, named in errors.
    """
    if 'cls_token' not in source:
        raise CheckpointReadError(f'{where} has no InternViT cls_token: arch cannot be read '
                                  'from it (is it an InternViT checkpoint?).')
    blocks = {int(m.group(1)) for k in source.keys() if (m := _BLOCK_RE.match(k))}
    if not blocks:
        raise CheckpointReadError(f'{where} has no InternViT blocks: arch cannot be read from it.')
    arch = dict(embed_dims=source.shape('cls_token')[-1], num_layers=max(blocks) + 1,
                qk_normalization='blocks.0.attn.q_norm.weight' in source,
                norm_type='ln' if 'blocks.0.norm1.bias' in source else 'rms',
                qkv_bias='blocks.0.attn.qkv.bias' in source)
    if 'blocks.0.mlp.fc1.weight' in source:
        arch['feedforward_channels'] = source.shape('blocks.0.mlp.fc1.weight')[0]
    if 'pos_embed' in source:
        tokens = source.shape('pos_embed')[1] - 1
        side = math.isqrt(tokens)
        if side * side != tokens:
            raise CheckpointReadError(f'{where}: pos_embed holds {tokens} patch tokens, not a '
                                      'square grid; give the arch explicitly.')
        arch['pretrain_size'] = side * patch_size
    return arch


def read_arch(path: Union[str, TensorSource], patch_size: int = 14,
              overrides: Optional[dict] = None) -> dict:
    """The full InternViT arch dict (the keys of ``ARCH_KEYS``) of a checkpoint.

    Args:
        path: Any checkpoint the backbone loader reads (file or model folder,
            or one already opened); a ``config.json`` in its folder is used too.
        patch_size: The model's patch side.
        overrides: Arch keys stated by the caller (e.g. ``num_heads`` for a
            width with no published model and no ``config.json``); they win.

    Raises:
        CheckpointReadError: the checkpoint holds no InternViT, or its
            ``config.json`` contradicts its tensors.
        UnknownHeadCountError: the head count is unknown.
    """
    source = as_source(path)
    path = path if isinstance(path, str) else source.description
    key_map = backbone_key_map(source.keys())
    ours = renamed_source(source, key_map.mapping)
    arch = arch_from_tensors(ours, patch_size, path)
    config = vision_config(read_config_json(path))
    stated = arch_from_config(config) if config else {}
    for key in _STRUCTURAL:
        if key in stated and key in arch and stated[key] != arch[key]:
            raise CheckpointReadError(
                f'The config.json beside {path} says {key}={stated[key]!r} but its tensors '
                f'have {arch[key]!r}: the files do not belong together.')
    arch.update({k: v for k, v in stated.items() if k not in arch})
    arch.update(overrides or {})
    if 'num_heads' not in arch:
        width = arch['embed_dims']
        if width not in HEADS_BY_WIDTH:
            raise UnknownHeadCountError(
                f'{path} holds an InternViT of width {width}, which no published model has, '
                'and no config.json states its head count: give it, e.g. '
                "arch=dict(auto=True, num_heads=N), or a full arch dict.", path, width)
        arch['num_heads'] = HEADS_BY_WIDTH[width]
    # Only the random init uses it; the published models use 0.1 (RMSNorm, 6B)
    # and 1.0 (LayerNorm, 300M).
    arch.setdefault('layer_scale_init', 0.1 if arch['norm_type'] == 'rms' else 1.0)
    for key in ('feedforward_channels', 'pretrain_size'):
        if key not in arch:
            raise CheckpointReadError(f'{path}: {key} cannot be read from the checkpoint '
                                      f'(no {"fc1" if key[0] == "f" else "pos_embed"} tensor); '
                                      'give it, or the full arch.')
    return arch
