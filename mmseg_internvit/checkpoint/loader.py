"""Strict loading of a checkpoint (already in our names) into a module.

One core serves the backbone loader (:func:`load_backbone_weights`, here) and
the whole-model loader (``model_loader.py``): every key and shape is checked
before anything is copied; a mismatch raises :class:`CheckpointMismatchError`
listing every missing, unexpected and mis-shaped key, and leaves the model
untouched. A position embedding stored for another square grid is adopted by
the InternViT that owns it instead of counting as a mismatch.
"""
import math
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Union

import torch
import torch.nn as nn

from .key_maps import backbone_key_map
from .readers import KeySpec, TensorSource, as_source, renamed_source

_BLOCK_RE = re.compile(r'^blocks\.(\d+)\.')
_NUMBER = re.compile(r'(?<=\.)(\d+)(?=\.)')
_SHOWN = 100  # entries listed per category once keys are grouped


class CheckpointMismatchError(ValueError):
    """Checkpoint and model disagree on keys or shapes; nothing was loaded."""


@dataclass
class MatchReport:
    """How a checkpoint's tensors (our names) line up with a model's.

    Attributes:
        missing: Model keys the checkpoint lacks.
        unexpected: Checkpoint keys (as stored) the model has no place for.
        mismatched: ``(our name, stored shape, model shape)`` triples.
        incomplete: Our name -> stored keys it needs but the file lacks.
        grids: Position embeddings to re-grid before copying: name -> side.
    """
    missing: List[str] = field(default_factory=list)
    unexpected: List[str] = field(default_factory=list)
    mismatched: List[tuple] = field(default_factory=list)
    incomplete: Dict[str, List[str]] = field(default_factory=dict)
    grids: Dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.unexpected or self.mismatched or self.incomplete)


def stored_name(spec: KeySpec) -> str:
    """The checkpoint key(s) behind one of our names, for messages."""
    return spec if isinstance(spec, str) else ' + '.join(spec)


def match_checkpoint(model: nn.Module, source: TensorSource, origin: Mapping[str, KeySpec],
                     incomplete: Optional[Dict[str, List[str]]] = None) -> MatchReport:
    """Compare ``source`` (keys in our names) with ``model``'s state dict.

    Args:
        model: The module to be filled.
        source: The checkpoint's tensors under our names.
        origin: Our name -> the stored key(s), to name them in messages.
        incomplete: Our names whose stored pieces are partly missing.
    """
    report = MatchReport(incomplete=dict(incomplete or {}))
    targets = model.state_dict(keep_vars=True)
    report.missing = [k for k in targets if k not in source and k not in report.incomplete]
    report.unexpected = [stored_name(origin[k]) for k in source.keys() if k not in targets]
    for name, tensor in targets.items():
        if name not in source:
            continue
        stored, own = source.shape(name), tuple(tensor.shape)
        if stored == own:
            continue
        side = _adoptable_grid(model, name, stored)
        if side is not None:
            report.grids[name] = side
        else:
            report.mismatched.append((name, stored, own))
    return report


def _adoptable_grid(model: nn.Module, name: str, stored: tuple) -> Optional[int]:
    owner_name, _, leaf = name.rpartition('.')
    if leaf != 'pos_embed':
        return None
    owner = model.get_submodule(owner_name) if owner_name else model
    adopt = getattr(owner, 'grid_for_pos_embed', None)
    return adopt(stored) if adopt is not None else None


def mismatch_message(report: MatchReport, header: str, origin: Mapping[str, KeySpec],
                     hints: List[str]) -> str:
    """One message listing every problem in ``report`` (keys grouped by block)."""
    parts = [header]
    if report.missing:
        parts.append(f'Missing {len(report.missing)} keys: {group_keys(report.missing)}.')
    if report.incomplete:
        lines = [f'{name} lacks {", ".join(keys)}'
                 for name, keys in sorted(report.incomplete.items())]
        parts.append(f'Incomplete q/k/v projections in {len(lines)} tensors: '
                     f'{group_keys(lines)}.')
    if report.unexpected:
        parts.append(f'Unexpected {len(report.unexpected)} keys: '
                     f'{group_keys(report.unexpected)}.')
    if report.mismatched:
        lines = [f'{_label(name, origin)} has shape {stored} in the checkpoint but {own} in '
                 'the model' for name, stored, own in report.mismatched]
        parts.append(f'Shape mismatch in {len(lines)} tensors: {group_keys(lines, "; ")}.')
    parts += hints
    return ' '.join(parts)


def _label(name: str, origin: Mapping[str, KeySpec]) -> str:
    stored = stored_name(origin.get(name, name))
    return stored if stored == name else f'{stored} (as {name})'


def group_keys(keys: List[str], sep: str = ', ') -> str:
    """List keys compactly: those differing only in their first index are merged
    (``blocks.{0-47}.attn.qkv.weight``), so every key is named in a short text."""
    groups: Dict[str, List[int]] = {}
    for key in keys:
        match = _NUMBER.search(key)
        if match is None:
            groups.setdefault(key, [])
            continue
        template = key[:match.start()] + '{}' + key[match.end():]
        groups.setdefault(template, []).append(int(match.group(1)))
    entries = []
    for template, numbers in sorted(groups.items()):
        if not numbers:
            entries.append(template)
        elif len(numbers) == 1:
            entries.append(template.replace('{}', str(numbers[0]), 1))
        else:
            entries.append(template.replace('{}', '{' + _ranges(sorted(numbers)) + '}', 1))
    more = f' ... (+{len(entries) - _SHOWN} more)' if len(entries) > _SHOWN else ''
    return sep.join(entries[:_SHOWN]) + more


def _ranges(numbers: List[int]) -> str:
    runs, start = [], numbers[0]
    for prev, cur in zip(numbers, numbers[1:] + [None]):
        if cur != prev + 1:
            runs.append(str(start) if start == prev else f'{start}-{prev}')
            start = cur
    return ','.join(runs)


def copy_checkpoint(model: nn.Module, source: TensorSource, report: MatchReport) -> None:
    """Copy every tensor of ``source`` into ``model`` (after a clean :func:`match_checkpoint`).

    Position embeddings listed in ``report.grids`` are re-shaped first (same
    Parameter object); tensors are read one at a time and cast to the model's
    dtype, so peak memory is the model plus one tensor.
    """
    for name, side in report.grids.items():
        owner_name = name.rpartition('.')[0]
        (model.get_submodule(owner_name) if owner_name else model).set_pos_embed_grid(side)
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            tensor.copy_(source[name])


def describe_backbone(source: TensorSource, prefix: str = '') -> Optional[str]:
    """Depth/width/grid of the InternViT stored under ``prefix`` in ``source``
    (our names), for hints."""
    names = [k[len(prefix):] for k in source.keys() if k.startswith(prefix)]
    blocks = {int(m.group(1)) for k in names if (m := _BLOCK_RE.match(k))}
    if 'cls_token' not in names or not blocks:
        return None
    width = source.shape(prefix + 'cls_token')[-1]
    text = f'{max(blocks) + 1} blocks of width {width}'
    if 'pos_embed' in names:
        tokens = source.shape(prefix + 'pos_embed')[1] - 1
        side = math.isqrt(tokens)
        if side * side == tokens:
            text += f', position grid {side}x{side} ({side * 14}px pretraining at patch 14)'
        else:
            text += f', a position embedding of {tokens} patch tokens (not a square grid)'
    return text


def arch_hint(model: nn.Module, stored: Optional[str]) -> str:
    """What the backbone was built as vs what the checkpoint holds."""
    built = (f'The model was built with {getattr(model, "num_layers", "?")} blocks of width '
             f'{getattr(model, "embed_dims", "?")}')
    if hasattr(model, 'pretrain_grid'):
        g = model.pretrain_grid
        built += f', position grid {g[0]}x{g[1]}'
    if stored is None:
        return built + '. Is this an InternViT checkpoint?'
    return (f'{built}; the checkpoint has {stored}. Choose the matching arch '
            "('6b': 48 blocks/224px, '6b-448': 45 blocks/448px, '300m': 24 blocks "
            "of width 1024/448px, or arch='auto' to read it from the checkpoint) or the "
            'matching checkpoint.')


def format_label(source: TensorSource, fmt: str) -> str:
    """How messages name the format of ``source`` (``fmt`` as detected from its keys):
    a safetensors file this project wrote by its own tag, as its keys alone would
    pass for another format's (a backbone file's for ``'timm'``)."""
    return source.tag or fmt


def load_checked(model: nn.Module, source: TensorSource, origin: Mapping[str, KeySpec],
                 header: str, hints: Callable[[MatchReport], List[str]],
                 incomplete: Optional[Dict[str, List[str]]] = None,
                 copy: bool = True) -> MatchReport:
    """Match, then copy ``source`` into ``model`` or raise with every problem."""
    report = match_checkpoint(model, source, origin, incomplete)
    if not report.ok:
        raise CheckpointMismatchError(mismatch_message(report, header, origin, hints(report)))
    if copy:
        copy_checkpoint(model, source, report)
    return report


def load_backbone_weights(model: nn.Module, path: Union[str, TensorSource], prefix: str = '',
                          copy: bool = True) -> str:
    """Copy every backbone tensor of ``path`` into ``model``, or raise.

    Tensors are read one at a time and copied into the already-allocated
    parameters (cast to their dtype), so peak memory is the model plus one
    tensor. Every key and shape is checked before anything is copied: a
    mismatch raises :class:`CheckpointMismatchError` naming the keys and the
    likely wrong ``arch``, and leaves the model untouched. A ``pos_embed``
    stored for another square grid is adopted (see ``InternViT.set_pos_embed_grid``).

    Args:
        model: An InternViT (or any module whose state dict uses our names).
        path: Checkpoint file or Hugging Face model folder (any format of
            :data:`~mmseg_internvit.checkpoint.FORMATS`), or one already opened.
        prefix: Backbone prefix inside an mmengine checkpoint (auto if empty).
        copy: False only checks keys and shapes (the model may live on the
            meta device).

    Returns:
        The detected checkpoint format.
    """
    source = as_source(path)
    key_map = backbone_key_map(source.keys(), prefix=prefix)
    ours = renamed_source(source, key_map.mapping)
    header = (f'Checkpoint {source.description} (format {format_label(source, key_map.format)!r})'
              ' does not match the model.')
    load_checked(model, ours, key_map.mapping, header,
                 lambda _: [arch_hint(model, describe_backbone(ours))], key_map.incomplete,
                 copy=copy)
    return key_map.format
