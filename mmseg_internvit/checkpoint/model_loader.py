"""Load a whole segmentor (backbone, neck, heads) from a checkpoint, strictly.

Reads this project's mmengine checkpoints (``.pth``, ``.safetensors``,
``module.``-prefixed), DeepSpeed / FSDP outputs (``mp_rank_00_model_states.pt``
or a ZeRO folder, FSDP full state dicts) and the segmentors released with
InternViT-6B (mmseg 0.30 layout, renamed on read, see ``segmentor_keys.py``).
"""
import os
import os.path as osp
from typing import List, Optional

import torch.nn as nn

from .key_maps import backbone_key_map
from .loader import (MatchReport, arch_hint, describe_backbone, format_label, load_checked,
                     stored_name)
from .readers import (BACKBONE_TAG, MODEL_TAG, TensorSource, open_checkpoint, renamed_source,
                      source_from_state_dict, unwrap_state_dict)
from .segmentor_keys import dataset_meta_from, head_kind, segmentor_key_map


def open_model_checkpoint(path: str) -> TensorSource:
    """Open a whole-model checkpoint: a file, a DeepSpeed ZeRO folder or a URL."""
    path = os.fspath(path)
    if '://' in path:
        # Remote files go through mmengine's loaders (http, s3, ...).
        from mmengine.runner import CheckpointLoader
        loaded = CheckpointLoader.load_checkpoint(path, map_location='cpu', logger='silent')
        meta = loaded.get('meta') if isinstance(loaded, dict) else None
        return source_from_state_dict(path, unwrap_state_dict(loaded, path), meta)
    from .consolidate import is_deepspeed_checkpoint, open_deepspeed_checkpoint, unusable_folder
    if is_deepspeed_checkpoint(path):
        return open_deepspeed_checkpoint(path)
    if osp.isdir(path):
        raise unusable_folder(path)
    return open_checkpoint(path)


def load_model_weights(model: nn.Module, path: str) -> dict:
    """Copy every weight of the segmentor checkpoint ``path`` into ``model``, or raise.

    Every key and shape is checked before anything is copied: a missing,
    unexpected or mis-shaped key raises
    :class:`~mmseg_internvit.checkpoint.CheckpointMismatchError` naming all of
    them with hints (class count, head type, backbone arch), and the model is
    left untouched. Tensors are read one at a time and cast to the model's
    dtypes. A backbone ``pos_embed`` stored for another square grid (the
    released segmentors keep the 36 x 36 grid of 504 px crops) is adopted.

    Args:
        model: A segmentor built from its config (e.g. mmseg's ``EncoderDecoder``).
        path: Checkpoint file, DeepSpeed ZeRO folder or URL.

    Returns:
        The checkpoint's meta, with ``dataset_meta`` (classes, palette) when
        the checkpoint records it (mmseg 0.x ``CLASSES``/``PALETTE`` converted),
        and ``format`` (``'mmengine'`` or ``'upstream-segmentor'``).
    """
    return _load(model, path, copy=True)


def check_checkpoint_fits(model: nn.Module, path: str) -> dict:
    """Raise :class:`CheckpointMismatchError` unless ``path`` fits ``model`` exactly.

    The same checks as :func:`load_model_weights` (only shapes are read), so
    evaluation tools can refuse a misfit before reading any data.

    Returns:
        The checkpoint's meta, as :func:`load_model_weights`.
    """
    return _load(model, path, copy=False)


def _load(model: nn.Module, path: str, copy: bool) -> dict:
    source = open_model_checkpoint(path)
    fmt, mapping = segmentor_key_map(source.keys())
    ours = renamed_source(source, mapping)
    label = _backbone_file_format(source) or format_label(source, fmt)
    header = f'Checkpoint {source.description} (format {label!r}) does not fit the model.'
    load_checked(model, ours, mapping, header,
                 lambda report: _hints(model, ours, mapping, report), copy=copy)
    meta = dict(source.meta)
    found = dataset_meta_from(meta)
    if found is not None:
        meta['dataset_meta'] = found
    meta['format'] = fmt
    return meta


def _hints(model: nn.Module, source: TensorSource, mapping: dict,
           report: MatchReport) -> List[str]:
    hints = []
    for name, stored, own in report.mismatched:
        head = name.split('.')[0]
        if name.endswith('conv_seg.weight') and stored[0] != own[0]:
            hints.append(f'The checkpoint predicts {stored[0]} classes, the config {own[0]}: '
                         f'set model.{head}.num_classes={stored[0]}, or use the config the '
                         'checkpoint was trained with.')
        elif name == 'auxiliary_head.convs.0.conv.weight':
            hints.append(f'The checkpoint\'s auxiliary head has {stored[0]} channels, the '
                         f'config\'s {own[0]}: set model.auxiliary_head.channels={stored[0]}.')
    backbone_only = _backbone_only_hint(source)
    if backbone_only is not None:
        return hints + [backbone_only]
    hints += _head_hints(model, source)
    if any(k.startswith('backbone.') for k in _problem_keys(report, mapping)):
        backbone = getattr(model, 'backbone', None)
        if backbone is not None:
            hints.append(arch_hint(backbone, describe_backbone(source, 'backbone.')))
    return hints


def _backbone_file_format(source: TensorSource) -> Optional[str]:
    """The format of a backbone-only file (a converted one, an upstream InternViT
    ``.pth``), or None for any other checkpoint."""
    if source.tag == MODEL_TAG or any(k.startswith('backbone.') for k in source.keys()):
        return None
    try:
        key_map = backbone_key_map(source.keys())
    except ValueError:  # several vision towers: no backbone file of ours to name
        return None
    if source.tag != BACKBONE_TAG and 'cls_token' not in key_map.mapping:
        return None
    return format_label(source, key_map.format)


def _backbone_only_hint(source: TensorSource) -> Optional[str]:
    """What to do with a backbone-only file given where a whole segmentor is
    expected, or None for other files."""
    if _backbone_file_format(source) is None:
        return None
    held = describe_backbone(renamed_source(source, backbone_key_map(source.keys()).mapping))
    return (f'This file holds an InternViT backbone only{f" ({held})" if held else ""}, not a '
            'whole segmentor: start training from it as the backbone\'s init_cfg '
            f"(model.backbone.init_cfg=dict(type='Pretrained', checkpoint='{source.description}'"
            ')), or pass a checkpoint of the whole model.')


def _head_hints(model: nn.Module, source: TensorSource) -> List[str]:
    stored = head_kind(source.keys())
    built = type(getattr(model, 'decode_head', None)).__name__
    hints = []
    if stored is not None and stored != built:
        what = {'LinearProbeHead': 'a linear-probe file (decode_head.bn / upstream '
                                   'decode_head.norm + conv_seg)',
                'UPerHead': 'a UPerNet file'}.get(stored, f'a {stored} file')
        hints.append(f'This is {what} but the config builds a {built}: use the matching '
                     'config (linear_* for linear probes, upernet_* for UPerNet files).')
    has_aux = any(k.startswith('auxiliary_head.') for k in source.keys())
    builds_aux = getattr(model, 'with_auxiliary_head', False)
    if builds_aux and not has_aux and stored == built:
        hints.append('The checkpoint has no auxiliary head but the config builds one: '
                     'set model.auxiliary_head=None.')
    return hints


def _problem_keys(report: MatchReport, mapping: dict) -> List[str]:
    inverse = {stored_name(v): k for k, v in mapping.items()}
    return (report.missing + [inverse.get(k, k) for k in report.unexpected]
            + [name for name, _, _ in report.mismatched])
