"""Find the InternViT arguments inside a model config (plain backbone or adapter)."""
from typing import MutableMapping, Optional

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
