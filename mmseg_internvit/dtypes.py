"""One dtype vocabulary for the whole package: configs, Python API and every tool.

Both spellings are accepted everywhere (``'bf16'`` and ``'bfloat16'``, ``'fp16'``
and ``'float16'``, ``'fp32'`` and ``'float32'``); configs and messages use the
long ones.
"""
from typing import Dict, List

import torch

_LONG: Dict[str, torch.dtype] = {
    'float32': torch.float32, 'bfloat16': torch.bfloat16, 'float16': torch.float16}
_SHORT = {'fp32': 'float32', 'bf16': 'bfloat16', 'fp16': 'float16'}

DTYPE_CHOICES: List[str] = sorted(_LONG) + sorted(_SHORT)


def dtype_name(name: str) -> str:
    """The long name (``'bfloat16'``) of a dtype given in either spelling.

    Raises:
        ValueError: ``name`` is not a supported dtype.
    """
    if isinstance(name, str):
        name = _SHORT.get(name, name)
    if name not in _LONG:
        raise ValueError(f'dtype must be one of {DTYPE_CHOICES}, got {name!r}')
    return name


def to_torch_dtype(name: str) -> torch.dtype:
    """The ``torch.dtype`` of a name in either spelling."""
    return _LONG[dtype_name(name)]
