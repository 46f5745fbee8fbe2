"""Turn a training checkpoint (DeepSpeed ZeRO folder, FSDP full, mmengine) into
one safetensors file of the whole model."""
import functools
import glob
import os.path as osp
from typing import Dict, Tuple

import torch

from .readers import CheckpointReadError, TensorSource
from .segmentor_keys import dataset_meta_from
from .writer import check_output_path, save_safetensors


def is_deepspeed_checkpoint(path: str) -> bool:
    return osp.isdir(path) and bool(glob.glob(osp.join(path, '*model_states.pt')))


def _deepspeed_state(path: str) -> Dict[str, torch.Tensor]:
    # DeepSpeed's own reader reassembles fp32 weights from the ZeRO partitions
    # (the folder is what our own training wrote: its pickles are trusted).
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
    parent, tag = osp.split(osp.abspath(path))
    try:
        return get_fp32_state_dict_from_zero_checkpoint(parent, tag=tag)
    except (AssertionError, FileNotFoundError, KeyError, ValueError, RuntimeError) as exc:
        # DeepSpeed's reader fails with bare asserts / key errors on incomplete folders.
        raise CheckpointReadError(
            f'cannot reassemble the DeepSpeed checkpoint {path}: {type(exc).__name__}: '
            f'{exc or "incomplete folder"}; is every rank\'s *_optim_states.pt and '
            '*model_states.pt file present and complete?') from exc


def unusable_folder(path: str) -> CheckpointReadError:
    """The error for a folder that is not a DeepSpeed checkpoint."""
    if glob.glob(osp.join(path, 'rank*.pth')):
        return CheckpointReadError(
            f'{path} is an FSDP checkpoint with per-rank local shards; train with '
            "strategy.state_dict_cfg='full' (the shipped FSDP configs do) to save "
            'whole-model checkpoints that can be consolidated.')
    return CheckpointReadError(f'{path} is a folder but neither a DeepSpeed checkpoint '
                               '(no *model_states.pt) nor a model folder.')


def open_deepspeed_checkpoint(path: str) -> TensorSource:
    """A DeepSpeed ZeRO folder as a lazy :class:`TensorSource`.

    Names and shapes come from the model-states file alone (``param_shapes``
    holds the full, unpartitioned shapes at every ZeRO stage), so checking
    that the folder fits a model reads no weights; the first tensor asked for
    reassembles the fp32 weights from the ZeRO partitions, once.
    """
    states = _read_model_states(path)
    shapes: Dict[str, Tuple[int, ...]] = {}
    for group in states.get('param_shapes') or []:
        shapes.update({name: tuple(shape) for name, shape in group.items()})
    shapes.update({name: tuple(shape) for name, shape in
                   (states.get('frozen_param_shapes') or {}).items()})
    module = states.get('module') or {}
    for name in states.get('buffer_names') or []:
        if isinstance(module.get(name), torch.Tensor):
            shapes[name] = tuple(module[name].shape)
    if not shapes:
        raise CheckpointReadError(f'{path}: its model-states file lists no parameters '
                                  '(param_shapes); it is not a DeepSpeed ZeRO checkpoint.')
    weights = functools.cache(lambda: _deepspeed_state(path))

    def getter(name: str):
        def get() -> torch.Tensor:
            state = weights()
            if name not in state:
                raise CheckpointReadError(f'{path}: {name!r} is listed in its model states but '
                                          'missing from the reassembled ZeRO partitions.')
            return state[name]
        return get

    meta = states.get('meta')
    return TensorSource(path, {name: getter(name) for name in shapes},
                        {name: (lambda s=shape: s) for name, shape in shapes.items()},
                        meta=meta if isinstance(meta, dict) else None)


def _read_model_states(path: str) -> dict:
    # Rank 0's file: mp_rank_00_model_states.pt (ZeRO-1/2) or
    # zero_pp_rank_0_mp_rank_00_model_states.pt (ZeRO-3). It pickles DeepSpeed's
    # own objects, so weights_only cannot read it; like DeepSpeed's reader
    # above, it trusts what our training wrote. Memory-mapped: the module
    # weights it holds at ZeRO-1/2 are not read.
    files = sorted(glob.glob(osp.join(path, '*model_states.pt')))
    try:
        states = torch.load(files[0], map_location='cpu', weights_only=False, mmap=True)
    except Exception as exc:  # torch raises many types for a broken pickle
        raise CheckpointReadError(f'cannot read {files[0]}: {type(exc).__name__}: {exc}; the '
                                  'DeepSpeed checkpoint is incomplete (a run killed while '
                                  'saving?) or damaged.') from exc
    if not isinstance(states, dict):
        raise CheckpointReadError(f'{files[0]} holds a {type(states).__name__}, not DeepSpeed '
                                  'model states.')
    return states


def consolidate_to_safetensors(src: str, dst: str, dtype: torch.dtype = None) -> int:
    """Write the model stored at ``src`` to ``dst`` (atomically).

    Returns:
        The number of tensors written.
    """
    from .model_loader import open_model_checkpoint
    check_output_path(dst)
    if not osp.exists(src):
        raise FileNotFoundError(f'Checkpoint {src} does not exist.')
    source = open_model_checkpoint(src)
    state = {}
    for key in source.keys():  # cast one tensor at a time: no second full copy
        value = source[key]
        state[key] = value.to(dtype) if dtype is not None and value.is_floating_point() else value
    # Classes and palette travel with the weights.
    save_safetensors(state, dst, dataset_meta_from(source.meta))
    return len(state)
