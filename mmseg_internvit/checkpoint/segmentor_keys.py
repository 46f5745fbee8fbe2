"""Whole-segmentor key names: the released upstream (mmseg 0.30) layout -> ours.

The segmentors released with InternViT-6B differ from ours in two places:

- the feature pyramid lives inside the backbone: ``backbone.up1`` =
  (ConvTranspose2d, channels-first LayerNorm, GELU, ConvTranspose2d, Identity),
  ``backbone.up2`` = (ConvTranspose2d, Identity), ``up3`` = identities,
  ``up4`` = (MaxPool2d, Identity). Ours is :class:`SimpleFPN` as the neck,
  with the same modules at ``neck.scales.0.{0,1,2,3}`` and ``neck.scales.1.0``;
- the linear probe is upstream's FCNHead with ``num_convs=0, with_norm=True``,
  whose BatchNorm is ``decode_head.norm``; ours (:class:`LinearProbeHead`)
  calls it ``decode_head.bn``.

UPerHead and FCN auxiliary heads have the same keys in mmseg 0.30 and 1.x,
and the backbone keys are already ours.
"""
import re
from typing import Dict, Iterable, Mapping, Optional, Tuple

UPSTREAM_FPN = re.compile(r'^backbone\.up[1-4]\.')
_UPSTREAM_RULES = (
    (re.compile(r'^backbone\.up1\.([013])\.'), r'neck.scales.0.\1.'),
    (re.compile(r'^backbone\.up2\.0\.'), r'neck.scales.1.0.'),
    (re.compile(r'^decode_head\.norm\.'), 'decode_head.bn.'),
)
_UPSTREAM_MARKERS = (UPSTREAM_FPN, re.compile(r'^decode_head\.norm\.running_var$'))
# What a whole checkpoint's decode head is, told by its keys (after mapping).
HEAD_KINDS = (('LinearProbeHead', 'decode_head.bn.'),
              ('UPerHead', 'decode_head.psp_modules.'),
              ('FCNHead', 'decode_head.convs.'))


def is_upstream_segmentor(keys: Iterable[str]) -> bool:
    """Whether ``keys`` are a released upstream segmentor's (FPN in the backbone,
    or the linear probe's ``decode_head.norm``)."""
    keys = list(keys)
    has_vit = any(k.startswith('backbone.blocks.') for k in keys)
    return has_vit and any(m.match(k) for k in keys for m in _UPSTREAM_MARKERS)


def strip_module_prefix(keys: Iterable[str]) -> Dict[str, str]:
    """Model key -> checkpoint key, without the ``module.`` that DDP wrappers add
    (mmengine's ``load_checkpoint`` strips it the same way)."""
    return {(k[len('module.'):] if k.startswith('module.') else k): k for k in keys}


def segmentor_key_map(keys: Iterable[str]) -> Tuple[str, Dict[str, str]]:
    """Map a whole-segmentor checkpoint's keys to our segmentor's names.

    Returns:
        ``(format, {our_name: checkpoint_key})``, format ``'upstream-segmentor'``
        (renamed) or ``'mmengine'`` (our own layout, ``module.`` stripped).
    """
    names = strip_module_prefix(keys)
    if not is_upstream_segmentor(names):
        return 'mmengine', names
    mapping = {}
    for name, key in names.items():
        for pattern, repl in _UPSTREAM_RULES:
            if pattern.match(name):
                name = pattern.sub(repl, name)
                break
        mapping[name] = key
    return 'upstream-segmentor', mapping


def convert_upstream_state_dict(state: Mapping) -> Optional[Dict]:
    """The state dict renamed to our layout, or None if it is not upstream's."""
    fmt, mapping = segmentor_key_map(state.keys())
    if fmt != 'upstream-segmentor':
        return None
    return {ours: state[key] for ours, key in mapping.items()}


def dataset_meta_from(meta: Mapping) -> Optional[dict]:
    """``dataset_meta`` of an mmengine meta, or from mmseg 0.x ``CLASSES``/``PALETTE``."""
    if isinstance(meta.get('dataset_meta'), Mapping):
        return dict(meta['dataset_meta'])
    if meta.get('CLASSES') is not None:
        found = dict(classes=tuple(meta['CLASSES']))
        if meta.get('PALETTE') is not None:
            found['palette'] = [list(p) for p in meta['PALETTE']]
        return found
    return None


def head_kind(keys: Iterable[str]) -> Optional[str]:
    """The decode-head class a whole checkpoint (our names) was trained with."""
    keys = list(keys)
    for kind, marker in HEAD_KINDS:
        if any(k.startswith(marker) for k in keys):
            return kind
    return None
