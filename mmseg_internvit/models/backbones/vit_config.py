"""The InternViT arguments inside a model config (plain backbone or adapter)."""
from typing import MutableMapping, Optional

from .arch_zoo import is_auto_arch

# The adapter builds its ViT from this key (InternViTAdapter(vit=dict(...))).
ADAPTER_VIT_KEY = 'vit'


def internvit_config(backbone: Optional[MutableMapping]) -> Optional[MutableMapping]:
    """The dict of InternViT arguments of a ``model.backbone`` config, or None.

    Args:
        backbone: ``model.backbone`` of a segmentor or detector config: an
            InternViT (``type`` ``'InternViT'`` or ``'mmseg_internvit.InternViT'``)
            or an InternViTAdapter, whose ViT arguments are its ``vit`` dict.

    Returns:
        The dict itself (changes to it change the config), or None when the
        backbone is neither.
    """
    if not isinstance(backbone, MutableMapping):
        return None
    kind = str(backbone.get('type', '')).rsplit('.', 1)[-1]
    if kind == 'InternViT':
        return backbone
    if kind == 'InternViTAdapter' and isinstance(backbone.get(ADAPTER_VIT_KEY), MutableMapping):
        return backbone[ADAPTER_VIT_KEY]
    return None


def drop_pretrained(backbone: Optional[MutableMapping], checkpoint: Optional[str] = None) -> None:
    """Make a ``model.backbone`` config read no pretrained file.

    For a model whose every weight comes from elsewhere (a whole-model
    checkpoint, or random weights in a benchmark): the backbone's
    ``init_cfg`` and its InternViT's (an adapter's ``vit``) are cleared; the
    file they name may not exist here. An InternViT with ``arch='auto'``
    reads its architecture from ``checkpoint`` instead.

    Args:
        backbone: ``model.backbone`` of a config, changed in place.
        checkpoint: The whole-model checkpoint that will be loaded, if any.

    Raises:
        ValueError: ``arch='auto'`` without a checkpoint to read it from.
    """
    if isinstance(backbone, MutableMapping) and 'init_cfg' in backbone:
        backbone['init_cfg'] = None
    vit = internvit_config(backbone)
    if vit is None:
        return
    if is_auto_arch(vit.get('arch')):
        if checkpoint is None:
            raise ValueError("the backbone's arch='auto' needs the checkpoint to read it from")
        vit['init_cfg'] = dict(type='Pretrained', checkpoint=str(checkpoint))
    else:
        vit['init_cfg'] = None
