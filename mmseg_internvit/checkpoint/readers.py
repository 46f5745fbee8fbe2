"""Open checkpoint files lazily: a key list now, each tensor only when asked.

Supported: safetensors files, sharded ``*.index.json`` (safetensors or torch
shards), torch pickles (``.pth``/``.pt``/``.bin``) loaded with
``weights_only=True`` (never executing code from a user's file), and Hugging
Face model folders holding any of these.
"""
import json
import os
from typing import Callable, Dict, List, Mapping, Optional, Tuple

import torch
from safetensors import safe_open

HF_FILE_NAMES = ('model.safetensors.index.json', 'model.safetensors',
                 'pytorch_model.bin.index.json', 'pytorch_model.bin')
# Containers that wrap a state dict: mmengine ('state_dict'), DeepSpeed and the
# upstream segmentation code ('module'), plain trainers ('model').
WRAPPER_KEYS = ('state_dict', 'module', 'model')


class CheckpointReadError(ValueError):
    """A checkpoint file could not be opened or understood."""


class TensorSource:
    """Read-only view of a checkpoint's tensors, loaded one key at a time.

    Args:
        description: Path (and shard) shown in error messages.
        getters: Key -> zero-argument function returning that tensor.
        shape_getters: Key -> function returning its shape without reading
            the data (where the format allows); defaults to reading it.
    """

    def __init__(self, description: str, getters: Dict[str, Callable[[], torch.Tensor]],
                 shape_getters: Optional[Dict[str, Callable[[], Tuple[int, ...]]]] = None) -> None:
        self.description = description
        self._getters = getters
        self._shape_getters = shape_getters or {}

    def shape(self, key: str) -> Tuple[int, ...]:
        getter = self._shape_getters.get(key)
        return tuple(getter()) if getter else tuple(self[key].shape)

    def keys(self) -> List[str]:
        return list(self._getters)

    def __contains__(self, key: str) -> bool:
        return key in self._getters

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._getters[key]()


def open_checkpoint(path: str) -> TensorSource:
    """Open a checkpoint file or Hugging Face model folder for lazy reading."""
    if os.path.isdir(path):
        for name in HF_FILE_NAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return open_checkpoint(candidate)
        raise CheckpointReadError(
            f'No checkpoint file in folder {path}: expected one of {HF_FILE_NAMES} '
            '(a Hugging Face InternViT download), or pass the checkpoint file itself.')
    if not os.path.isfile(path):
        raise FileNotFoundError(f'Checkpoint {path} does not exist.')
    if path.endswith('.index.json'):
        return _open_index(path)
    if path.endswith('.safetensors'):
        return _open_safetensors(path)
    return _open_torch(path)


def _open_safetensors(path: str) -> TensorSource:
    try:
        with safe_open(path, framework='pt') as f:
            shapes = {key: f.get_slice(key).get_shape() for key in f.keys()}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointReadError(f'Cannot read safetensors file {path}: {exc}') from exc

    def getter(key: str) -> Callable[[], torch.Tensor]:
        def get() -> torch.Tensor:
            with safe_open(path, framework='pt') as f:
                return f.get_tensor(key)
        return get

    return TensorSource(path, {key: getter(key) for key in shapes},
                        {key: (lambda s=shape: s) for key, shape in shapes.items()})


def _open_torch(path: str) -> TensorSource:
    try:
        obj = torch.load(path, map_location='cpu', weights_only=True, mmap=True)
    except RuntimeError as exc:
        if 'mmap' not in str(exc):
            raise _unsafe_pickle_error(path, exc) from exc
        # Files in torch's legacy (non-zip) format cannot be memory-mapped.
        try:
            obj = torch.load(path, map_location='cpu', weights_only=True)
        except Exception as exc2:
            raise _unsafe_pickle_error(path, exc2) from exc2
    except Exception as exc:
        raise _unsafe_pickle_error(path, exc) from exc
    state = unwrap_state_dict(obj, path)
    return TensorSource(path, {k: (lambda v=v: v) for k, v in state.items()
                               if isinstance(v, torch.Tensor)})


def _unsafe_pickle_error(path: str, exc: Exception) -> CheckpointReadError:
    return CheckpointReadError(
        f'Cannot load {path} with torch.load(weights_only=True): {exc}. Weight files '
        'are never unpickled unsafely; if you trust the file, re-save its state dict '
        '(or convert it to safetensors) in a trusted environment.')


def unwrap_state_dict(obj: object, path: str) -> Mapping[str, torch.Tensor]:
    """Return the state dict inside mmengine/DeepSpeed/upstream containers."""
    if not isinstance(obj, Mapping):
        raise CheckpointReadError(f'{path} holds a {type(obj).__name__}, not a state dict.')
    for key in WRAPPER_KEYS:
        inner = obj.get(key)
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            return inner
    return obj


def _open_index(path: str) -> TensorSource:
    try:
        with open(path) as f:
            weight_map = json.load(f)['weight_map']
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointReadError(f'{path} is not a sharded-checkpoint index with a '
                                  f"'weight_map': {exc}") from exc
    folder = os.path.dirname(path)
    shards: Dict[str, TensorSource] = {}
    getters, shape_getters = {}, {}
    for key, shard in weight_map.items():
        if shard not in shards:
            shard_path = os.path.join(folder, shard)
            if not os.path.isfile(shard_path):
                raise CheckpointReadError(f'Shard {shard_path} listed in {path} is missing; '
                                          'download every shard of the checkpoint.')
            shards[shard] = open_checkpoint(shard_path)
        if key not in shards[shard]:
            raise CheckpointReadError(f'{path} maps {key!r} to {shard}, which lacks it.')
        getters[key] = (lambda s=shards[shard], k=key: s[k])
        shape_getters[key] = (lambda s=shards[shard], k=key: s.shape(k))
    return TensorSource(path, getters, shape_getters)
