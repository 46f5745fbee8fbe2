"""Map the key names of each supported checkpoint format to this backbone's.

Our names are the timm-style ones of the upstream segmentation code
(``cls_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``,
``blocks.N.ls1.gamma``), so that format needs no renaming.
"""
import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Tuple

from .readers import KeySpec
from .segmentor_keys import UPSTREAM_FPN, is_upstream_segmentor

# Hugging Face remote-code InternViT -> ours.
_HF_RULES = (
    (re.compile(r'^embeddings\.class_embedding$'), 'cls_token'),
    (re.compile(r'^embeddings\.position_embedding$'), 'pos_embed'),
    (re.compile(r'^embeddings\.patch_embedding\.(weight|bias)$'), r'patch_embed.proj.\1'),
    (re.compile(r'^encoder\.layers\.(\d+)\.ls([12])$'), r'blocks.\1.ls\2.gamma'),
    (re.compile(r'^encoder\.layers\.(\d+)\.(.+)$'), r'blocks.\1.\2'),
)
# transformers' InternVLVisionModel (models/internvl/modeling_internvl.py) -> ours.
_TRANSFORMERS_RULES = (
    (re.compile(r'^embeddings\.cls_token$'), 'cls_token'),
    (re.compile(r'^embeddings\.position_embeddings$'), 'pos_embed'),
    (re.compile(r'^embeddings\.patch_embeddings\.projection\.(weight|bias)$'),
     r'patch_embed.proj.\1'),
    (re.compile(r'^encoder\.layer\.(\d+)\.attention\.projection_layer\.(weight|bias)$'),
     r'blocks.\1.attn.proj.\2'),
    (re.compile(r'^encoder\.layer\.(\d+)\.attention\.([qk]_norm)\.weight$'),
     r'blocks.\1.attn.\2.weight'),
    (re.compile(r'^encoder\.layer\.(\d+)\.lambda_([12])$'), r'blocks.\1.ls\2.gamma'),
    (re.compile(r'^encoder\.layer\.(\d+)\.layernorm_before\.(weight|bias)$'),
     r'blocks.\1.norm1.\2'),
    (re.compile(r'^encoder\.layer\.(\d+)\.layernorm_after\.(weight|bias)$'),
     r'blocks.\1.norm2.\2'),
    (re.compile(r'^encoder\.layer\.(\d+)\.mlp\.(fc[12])\.(weight|bias)$'),
     r'blocks.\1.mlp.\2.\3'),
)
# transformers keeps q, k and v apart; ours is one qkv Linear (rows q, k, v).
_TRANSFORMERS_QKV = re.compile(r'^encoder\.layer\.(\d+)\.attention\.([qkv])_proj\.(weight|bias)$')
# Names only transformers' vision tower has; what precedes them is its prefix.
_TRANSFORMERS_MARKERS = ('embeddings.cls_token', 'embeddings.patch_embeddings.projection.weight')

HF_CHAT_PREFIX = 'vision_model.'
MMENGINE_PREFIX = 'backbone.'
# Parts of upstream checkpoints that are not the backbone.
UPSTREAM_IGNORED_PREFIXES = ('clip_projector.',)

FORMATS = ('hf', 'hf-chat', 'transformers', 'mmengine', 'upstream-segmentor', 'timm')


class KeyMap(NamedTuple):
    """How a checkpoint's keys become backbone parameter names.

    Attributes:
        format: One of :data:`FORMATS`.
        mapping: Our name -> checkpoint key, or a tuple of keys to concatenate.
        ignored: Checkpoint keys that are not part of the backbone.
        incomplete: Our name -> checkpoint keys it needs but the file lacks
            (a q/k/v projection with a piece missing).
    """
    format: str
    mapping: Dict[str, KeySpec]
    ignored: List[str]
    incomplete: Dict[str, List[str]]


def transformers_prefix(keys: Iterable[str]) -> Optional[str]:
    """The prefix of transformers' vision tower in ``keys`` (``''``,
    ``'vision_tower.'``, ``'model.vision_tower.'``), or None if there is none."""
    prefixes = sorted({k[:-len(m)] for k in keys for m in _TRANSFORMERS_MARKERS
                       if k.endswith(m)})
    if len(prefixes) > 1:
        raise ValueError(f'The checkpoint holds several InternVL vision towers {prefixes}; '
                         'convert the one you want on its own.')
    return prefixes[0] if prefixes else None


def detect_format(keys: Iterable[str]) -> str:
    """Name the checkpoint format from its keys (one of :data:`FORMATS`)."""
    keys = list(keys)
    if any(k.startswith(HF_CHAT_PREFIX + 'embeddings.') for k in keys):
        return 'hf-chat'
    if transformers_prefix(keys) is not None:
        return 'transformers'
    if any(k.startswith('embeddings.') or k.startswith('encoder.layers.') for k in keys):
        return 'hf'
    if is_upstream_segmentor(keys):
        return 'upstream-segmentor'
    if any(k.startswith(MMENGINE_PREFIX) for k in keys):
        return 'mmengine'
    return 'timm'


def _apply(rules, key: str) -> str:
    for pattern, repl in rules:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return key  # unknown: reported as unexpected by the loader


def backbone_key_map(keys: Iterable[str], prefix: str = '') -> KeyMap:
    """Map checkpoint keys to backbone parameter names.

    Args:
        keys: All keys of the checkpoint.
        prefix: For mmengine checkpoints, the backbone's prefix inside the
            model; by default the prefix of the one ``cls_token`` under
            ``backbone.`` (``'backbone.'``, or ``'backbone.vit.'`` for an
            adapter). Ignored for other formats.
    """
    keys = list(keys)
    fmt = detect_format(keys)
    if fmt == 'transformers':
        return _transformers_key_map(keys)
    mapping: Dict[str, KeySpec] = {}
    ignored: List[str] = []
    strip = ''
    if fmt in ('mmengine', 'upstream-segmentor'):
        strip = prefix or _mmengine_backbone_prefix(keys)
    for key in keys:
        if fmt == 'hf-chat':
            if not key.startswith(HF_CHAT_PREFIX):
                ignored.append(key)  # language_model.*, mlp1.*
                continue
            ours = _apply(_HF_RULES, key[len(HF_CHAT_PREFIX):])
        elif fmt == 'hf':
            ours = _apply(_HF_RULES, key)
        elif fmt in ('mmengine', 'upstream-segmentor'):
            # Heads, necks, the data preprocessor, and the FPN that upstream
            # segmentors keep inside their backbone (backbone.up1..up4).
            if not key.startswith(strip) or UPSTREAM_FPN.match(key):
                ignored.append(key)
                continue
            ours = key[len(strip):]
        else:
            if key.startswith(UPSTREAM_IGNORED_PREFIXES):
                ignored.append(key)
                continue
            ours = key
        mapping[ours] = key
    return KeyMap(fmt, mapping, ignored, {})


def _transformers_key_map(keys: List[str]) -> KeyMap:
    prefix = transformers_prefix(keys)
    mapping: Dict[str, KeySpec] = {}
    ignored: List[str] = []
    qkv: Dict[Tuple[str, str], Dict[str, str]] = {}  # (block, weight|bias) -> {q|k|v: key}
    for key in keys:
        if not key.startswith(prefix):
            ignored.append(key)  # multi_modal_projector.*, language_model.*, lm_head.*
            continue
        name = key[len(prefix):]
        match = _TRANSFORMERS_QKV.match(name)
        if match:
            block, piece, kind = match.groups()
            qkv.setdefault((block, kind), {})[piece] = key
            continue
        mapping[_apply(_TRANSFORMERS_RULES, name)] = key
    incomplete: Dict[str, List[str]] = {}
    for (block, kind), pieces in qkv.items():
        ours = f'blocks.{block}.attn.qkv.{kind}'
        if set(pieces) == {'q', 'k', 'v'}:
            mapping[ours] = tuple(pieces[p] for p in 'qkv')
        else:
            incomplete[ours] = [f'{prefix}encoder.layer.{block}.attention.{p}_proj.{kind}'
                                for p in 'qkv' if p not in pieces]
    return KeyMap('transformers', mapping, ignored, incomplete)


def _mmengine_backbone_prefix(keys: List[str]) -> str:
    prefixes = sorted(k[:-len('cls_token')] for k in keys
                      if k.startswith(MMENGINE_PREFIX) and k.endswith('.cls_token'))
    if len(prefixes) > 1:
        raise ValueError(f'The checkpoint holds several InternViT backbones {prefixes}; '
                         'say which one to load with the prefix argument.')
    return prefixes[0] if prefixes else MMENGINE_PREFIX
