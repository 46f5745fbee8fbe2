"""FSDP wrapping and activation-checkpointing rules for InternViT blocks."""
from typing import Iterable, Tuple, Type

import torch.nn as nn

from mmseg_internvit.registry import FUNCTIONS


def _block_classes(layer_cls_names: Iterable[str]) -> Tuple[Type[nn.Module], ...]:
    """The module classes of ``mmseg_internvit.models.backbones.intern_vit`` named."""
    from mmseg_internvit.models.backbones import intern_vit
    found = {name: getattr(intern_vit, name, None) for name in layer_cls_names}
    unknown = [name for name, cls in found.items()
               if not (isinstance(cls, type) and issubclass(cls, nn.Module))]
    if unknown:
        raise ValueError(f'FSDP wrap class(es) {unknown} not found; layer_cls_names must '
                         'name module classes of mmseg_internvit.models.backbones.intern_vit, '
                         "e.g. 'InternViTBlock'")
    return tuple(found.values())


@FUNCTIONS.register_module()
def internvit_auto_wrap_policy(module: nn.Module, recurse: bool, nonwrapped_numel: int,
                               layer_cls_names: Tuple[str, ...] = ('InternViTBlock', )) -> bool:
    """FSDP auto-wrap policy: one FSDP unit per InternViT block.

    Use in a config as
    ``model_wrapper=dict(auto_wrap_policy=dict(type='internvit_auto_wrap_policy'))``.
    Everything outside the blocks (embeddings, neck, heads) forms the root unit.
    """
    block_classes = _block_classes(layer_cls_names)  # validate even when recursing
    if recurse:
        return True
    return isinstance(module, block_classes)


@FUNCTIONS.register_module()
def is_internvit_block(module: nn.Module) -> bool:
    """``check_fn`` for FSDPStrategy's ``activation_checkpointing``."""
    return isinstance(module, _block_classes(('InternViTBlock', )))
