"""Optimizer wrapper constructor with layer-wise lr decay for InternViT."""
from typing import List, Optional

import torch.nn as nn
from mmengine.dist import get_dist_info
from mmengine.logging import MMLogger
from mmengine.optim import DefaultOptimWrapperConstructor

from timm.layers import LayerScale
from torch.nn.modules.batchnorm import _NormBase

from mmseg_internvit.models.layers import RMSNorm
from mmseg_internvit.registry import OPTIM_WRAPPER_CONSTRUCTORS

# Parameters of these modules (scales and shifts) get no weight decay.
NO_DECAY_MODULES = (_NormBase, nn.LayerNorm, nn.GroupNorm, RMSNorm, LayerScale)


def _named_parameters_with_module(model: nn.Module):
    """Yield ``(name, param, owning module)`` once per parameter."""
    seen = set()
    for module_name, module in model.named_modules():
        for param_name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            yield (f'{module_name}.{param_name}' if module_name else param_name), param, module


def find_layer_depth_owner(model: nn.Module) -> tuple:
    """Return ``(prefix, module)`` of the submodule that has ``get_layer_depth``.

    Looks through ``model`` itself and its submodules (``backbone`` of a
    segmentor or detector, ``backbone.vit`` of an adapter), so the constructor
    needs no knowledge of name patterns.
    """
    for name, module in model.named_modules():
        if hasattr(module, 'get_layer_depth') and hasattr(module, 'no_weight_decay'):
            return (name + '.' if name else ''), module
    raise TypeError(f'{type(model).__name__} has no submodule with get_layer_depth(); '
                    'LayerDecayOptimWrapperConstructor needs an InternViT backbone. '
                    "Use the default constructor (remove 'constructor' from optim_wrapper).")


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class LayerDecayOptimWrapperConstructor(DefaultOptimWrapperConstructor):
    """Layer-wise learning-rate decay and InternViT's no-decay rules.

    A parameter of layer id ``i`` (embeddings 0, block ``k`` -> ``k + 1``,
    anything outside the backbone -> the top id) gets
    ``lr = base_lr * layer_decay_rate ** (num_layer_ids - 1 - i)``. Weight
    decay is 0 for norm and layer-scale parameters, biases and the
    backbone's ``no_weight_decay()`` names (``pos_embed``, ``cls_token``).
    Frozen parameters are left out. Groups are built here, before any
    DeepSpeed/FSDP engine takes the optimizer, so the wrapped optimizer keeps
    one group per (layer, decay) pair with its own ``lr``.

    Args:
        optim_wrapper_cfg: As for mmengine's default constructor.
        paramwise_cfg: ``dict(layer_decay_rate=0.95)``; 1.0 (the default)
            disables the decay but keeps the no-decay rules.
    """

    def __init__(self, optim_wrapper_cfg: dict, paramwise_cfg: Optional[dict] = None) -> None:
        # A non-empty paramwise_cfg makes the base class call add_params.
        super().__init__(optim_wrapper_cfg,
                         dict(dict(layer_decay_rate=1.0), **(paramwise_cfg or {})))

    def add_params(self, params: List[dict], module: nn.Module, prefix: str = '',
                   is_dcn_module: Optional[int] = None) -> None:
        decay_rate = float(self.paramwise_cfg.get('layer_decay_rate', 1.0))
        if not 0 < decay_rate <= 1:
            raise ValueError(f'layer_decay_rate must be in (0, 1], got {decay_rate}')
        unknown = set(self.paramwise_cfg) - {'layer_decay_rate'}
        if unknown:
            raise ValueError(f'LayerDecayOptimWrapperConstructor got unknown paramwise_cfg '
                             f'keys {sorted(unknown)}; it only takes layer_decay_rate')
        owner_prefix, owner = find_layer_depth_owner(module)
        no_decay_names = {owner_prefix + n for n in owner.no_weight_decay()}
        base_wd = self.base_wd or 0.0
        groups = {}
        for name, param, parent in _named_parameters_with_module(module):
            if not param.requires_grad:
                continue
            layer_id, num_ids = owner.get_layer_depth(name, prefix=owner_prefix)
            # Decided by the owning module's type, not param.ndim: under FSDP
            # (use_orig_params) every local shard is 1-D.
            no_decay = (isinstance(parent, NO_DECAY_MODULES) or name.endswith('.bias')
                        or name in no_decay_names)
            key = (layer_id, no_decay)
            if key not in groups:
                scale = decay_rate**(num_ids - 1 - layer_id)
                groups[key] = dict(params=[], param_names=[], lr=self.base_lr * scale,
                                   weight_decay=0.0 if no_decay else base_wd,
                                   lr_scale=scale, layer_id=layer_id)
            groups[key]['params'].append(param)
            groups[key]['param_names'].append(name)
        if not groups:
            raise ValueError('The model has no trainable parameters (everything is frozen): '
                             'nothing to optimise. Unfreeze a part (e.g. backbone.frozen=False) '
                             'or train a head.')
        params.extend(groups[key] for key in sorted(groups))
        if get_dist_info()[0] == 0:
            MMLogger.get_current_instance().info(
                f'Layer-wise lr decay {decay_rate}: {len(groups)} param groups, '
                f'lr scales {min(g["lr_scale"] for g in groups.values()):.4g}..1')
