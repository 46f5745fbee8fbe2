"""Map the key names of each supported checkpoint format to this backbone's.

Our names are the timm-style ones of the upstream segmentation code
(``cls_token``, ``pos_embed``, ``patch_embed.proj.*``, ``blocks.N.*``,
``blocks.N.ls1.gamma``), so that format needs no renaming.
"""
import re
from typing import Dict, Iterable, List, Tuple

# Hugging Face remote-code InternViT -> ours.
_HF_RULES = (
    (re.compile(r'^embeddings\.class_embedding$'), 'cls_token'),
    (re.compile(r'^embeddings\.position_embedding$'), 'pos_embed'),
    (re.compile(r'^embeddings\.patch_embedding\.(weight|bias)$'), r'patch_embed.proj.\1'),
    (re.compile(r'^encoder\.layers\.(\d+)\.ls([12])$'), r'blocks.\1.ls\2.gamma'),
    (re.compile(r'^encoder\.layers\.(\d+)\.(.+)$'), r'blocks.\1.\2'),
)
HF_CHAT_PREFIX = 'vision_model.'
MMENGINE_PREFIX = 'backbone.'
# Parts of upstream checkpoints that are not the backbone.
UPSTREAM_IGNORED_PREFIXES = ('clip_projector.',)

FORMATS = ('hf', 'hf-chat', 'mmengine', 'timm')


def detect_format(keys: Iterable[str]) -> str:
    """Name the checkpoint format from its keys (one of :data:`FORMATS`)."""
    keys = list(keys)
    if any(k.startswith(HF_CHAT_PREFIX + 'embeddings.') for k in keys):
        return 'hf-chat'
    if any(k.startswith('embeddings.') or k.startswith('encoder.layers.') for k in keys):
        return 'hf'
    if any(k.startswith(MMENGINE_PREFIX) for k in keys):
        return 'mmengine'
    return 'timm'


def _map_hf(key: str) -> str:
    for pattern, repl in _HF_RULES:
        if pattern.match(key):
            return pattern.sub(repl, key)
    return key  # unknown: reported as unexpected by the loader


def backbone_key_map(keys: Iterable[str], prefix: str = '') -> Tuple[str, Dict[str, str], List[str]]:
    """Map checkpoint keys to backbone parameter names.

    Args:
        keys: All keys of the checkpoint.
        prefix: For mmengine checkpoints, the backbone's prefix inside the
            model; by default the prefix of the one ``cls_token`` under
            ``backbone.`` (``'backbone.'``, or ``'backbone.vit.'`` for an
            adapter). Ignored for other formats.

    Returns:
        ``(format, {our_name: checkpoint_key}, ignored_checkpoint_keys)``.
    """
    keys = list(keys)
    fmt = detect_format(keys)
    mapping: Dict[str, str] = {}
    ignored: List[str] = []
    for key in keys:
        if fmt == 'hf-chat':
            if not key.startswith(HF_CHAT_PREFIX):
                ignored.append(key)  # language_model.*, mlp1.*
                continue
            ours = _map_hf(key[len(HF_CHAT_PREFIX):])
        elif fmt == 'hf':
            ours = _map_hf(key)
        elif fmt == 'mmengine':
            strip = prefix or _mmengine_backbone_prefix(keys)
            if not key.startswith(strip):
                ignored.append(key)  # heads, necks, data preprocessor
                continue
            ours = key[len(strip):]
        else:
            if key.startswith(UPSTREAM_IGNORED_PREFIXES):
                ignored.append(key)
                continue
            ours = key
        mapping[ours] = key
    return fmt, mapping, ignored


def _mmengine_backbone_prefix(keys: List[str]) -> str:
    prefixes = sorted(k[:-len('cls_token')] for k in keys
                      if k.startswith(MMENGINE_PREFIX) and k.endswith('.cls_token'))
    if len(prefixes) > 1:
        raise ValueError(f'The checkpoint holds several InternViT backbones {prefixes}; '
                         'say which one to load with the prefix argument.')
    return prefixes[0] if prefixes else MMENGINE_PREFIX
