"""Checks and normalisations of InternViT's arguments and inputs (shared with the adapter)."""
from typing import List, Optional, Sequence

import torch

from mmseg_internvit.dtypes import to_torch_dtype


def check_drop_path_rate(rate: float) -> None:
    """Refuse a stochastic-depth rate outside [0, 1) (DropPath would scale by 1 / (1 - rate))."""
    if not 0 <= rate < 1:
        raise ValueError(f'drop_path_rate must be in [0, 1) (the last block\'s stochastic '
                         f'depth), got {rate!r}')


def check_images(x: torch.Tensor, in_channels: int) -> None:
    """Refuse what is not a batch of images ``(B, in_channels, H, W)``, by its shape."""
    if x.dim() != 4 or x.shape[1] != in_channels:
        raise ValueError(f'InternViT expects images (B, {in_channels}, H, W), got a tensor '
                         f'of shape {tuple(x.shape)}')


def normalize_block_indexes(indexes: Sequence[int], num_layers: int, name: str) -> List[int]:
    """Block indexes (negative from the end) as 0-based ints, in the given order.

    Args:
        indexes: Indexes to check.
        num_layers: Number of blocks.
        name: Argument name for the error message.
    """
    result = []
    for index in indexes:
        if isinstance(index, bool) or not isinstance(index, int) \
                or not -num_layers <= index < num_layers:
            raise ValueError(f'{name} entry {index!r} is out of range for {num_layers} blocks '
                             f'(use integers -{num_layers}..{num_layers - 1})')
        result.append(index % num_layers)
    return result


def block_window_sizes(window_size: Optional[int], global_attn_indexes: Sequence[int],
                       num_layers: int) -> List[Optional[int]]:
    """Each block's attention window (None: global), after checking the arguments.

    Args:
        window_size: Window side in tokens, or None for global attention.
        global_attn_indexes: 0-based blocks that stay global.
        num_layers: Number of blocks.
    """
    if window_size is None:
        if global_attn_indexes:
            raise ValueError(f'global_attn_indexes={list(global_attn_indexes)} needs '
                             'window_size: set window_size (e.g. 14) or drop global_attn_indexes')
        return [None] * num_layers
    if isinstance(window_size, bool) or not isinstance(window_size, int) or window_size < 1:
        raise ValueError('window_size must be a positive int (tokens per window side, e.g. 14) '
                         f'or None for global attention; got {window_size!r}')
    return [None if i in global_attn_indexes else window_size for i in range(num_layers)]


def low_precision_dtype(autocast_dtype: Optional[str]) -> Optional[torch.dtype]:
    """The torch dtype of an ``autocast_dtype`` argument (None: no autocast)."""
    if autocast_dtype is None:
        return None
    try:
        dtype = to_torch_dtype(autocast_dtype)
    except ValueError:
        dtype = None
    if dtype not in (torch.bfloat16, torch.float16):
        raise ValueError("InternViT autocast_dtype must be None, 'bfloat16' or 'float16', "
                         f'got {autocast_dtype!r}')
    return dtype


def check_init_cfg(init_cfg: Optional[dict]) -> Optional[dict]:
    """A copy of a ``dict(type='Pretrained', checkpoint=PATH)`` init_cfg, or None."""
    if init_cfg is None:
        return None
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained' \
            and init_cfg.get('checkpoint'):
        return dict(init_cfg)
    raise ValueError("InternViT init_cfg must be None or dict(type='Pretrained', "
                     f"checkpoint=PATH); got {init_cfg!r}")
