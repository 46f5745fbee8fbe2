"""Turn a training checkpoint (DeepSpeed ZeRO folder, FSDP full, mmengine) into
one safetensors file of the whole model."""
import glob
import os.path as osp
from typing import Dict

import torch

from .readers import CheckpointReadError, open_checkpoint
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


def load_model_state(path: str) -> Dict[str, torch.Tensor]:
    """The full model state dict (segmentor keys) stored at ``path``."""
    if is_deepspeed_checkpoint(path):
        return _deepspeed_state(path)
    if osp.isdir(path):
        raise unusable_folder(path)
    source = open_checkpoint(path)
    return {k: source[k] for k in source.keys()}


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
    # Classes and palette travel with the weights (DeepSpeed folders record none).
    save_safetensors(state, dst, dataset_meta_from(source.meta))
    return len(state)

