"""Open checkpoint files lazily: a key list now, each tensor only when asked.

Supported: safetensors files, sharded ``*.index.json`` (safetensors or torch
shards), torch pickles (``.pth``/``.pt``/``.bin``) loaded with
``weights_only=True`` (never executing code from a user's file), and Hugging
Face model folders holding any of these. A sharded checkpoint opens a shard
only when one of its tensors is asked for, so the language-model shards of a
chat checkpoint need not be on disk to read its vision tower.
"""
import json
import os
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from safetensors import safe_open

from .safe_globals import allow_mmengine_checkpoint_globals

HF_FILE_NAMES = ('model.safetensors.index.json', 'model.safetensors',
                 'pytorch_model.bin.index.json', 'pytorch_model.bin')
# Containers that wrap a state dict: mmengine ('state_dict'), DeepSpeed and the
# upstream segmentation code ('module'), plain trainers ('model').
WRAPPER_KEYS = ('state_dict', 'module', 'model')
# safetensors metadata entry holding the JSON dataset_meta of a whole model.
DATASET_META_KEY = 'dataset_meta'
# safetensors metadata 'format' of the files this project writes (writer.py).
BACKBONE_TAG = 'mmseg_internvit-backbone'
MODEL_TAG = 'mmseg_internvit-model'
_SHOWN = 8  # keys listed in a read error
# How torch.save's files begin: a zip archive (torch >= 1.6) or a pickle (legacy).
_TORCH_FILE_STARTS = (b'PK\x03\x04', b'\x80')

# Our name -> one checkpoint key, or several concatenated along dim 0
# (transformers' separate q/k/v projections -> our fused qkv).
KeySpec = Union[str, Tuple[str, ...]]


class CheckpointReadError(ValueError):
    """A checkpoint file could not be opened or understood."""


class TensorSource:
    """Read-only view of a checkpoint's tensors, loaded one key at a time.

    Args:
        description: Path (and shard) shown in error messages.
        getters: Key -> zero-argument function returning that tensor.
        shape_getters: Key -> function returning its shape without reading
            the data (where the format allows); defaults to reading it.
        meta: The checkpoint's ``meta`` (mmengine / mmseg 0.x) or the
            ``dataset_meta`` stored in safetensors metadata, else empty.
        tag: :data:`BACKBONE_TAG` or :data:`MODEL_TAG` for a safetensors file
            this project wrote, else None.
    """

    def __init__(self, description: str, getters: Dict[str, Callable[[], torch.Tensor]],
                 shape_getters: Optional[Dict[str, Callable[[], Tuple[int, ...]]]] = None,
                 meta: Optional[dict] = None, tag: Optional[str] = None) -> None:
        self.description = description
        self._getters = getters
        self._shape_getters = shape_getters or {}
        self.meta = dict(meta or {})
        self.tag = tag

    def shape(self, key: str) -> Tuple[int, ...]:
        getter = self._shape_getters.get(key)
        return tuple(getter()) if getter else tuple(self[key].shape)

    def keys(self) -> List[str]:
        return list(self._getters)

    def __contains__(self, key: str) -> bool:
        return key in self._getters

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._getters[key]()


def source_from_state_dict(description: str, state: Mapping[str, torch.Tensor],
                           meta: Optional[dict] = None) -> TensorSource:
    """A :class:`TensorSource` over an in-memory state dict."""
    return TensorSource(description, {k: (lambda v=v: v) for k, v in state.items()
                                      if isinstance(v, torch.Tensor)}, meta=meta)


def renamed_source(source: TensorSource, mapping: Mapping[str, KeySpec]) -> TensorSource:
    """View ``source`` under new names: ``mapping`` is new name -> key spec.

    A tuple spec concatenates its tensors along dim 0 when read; shapes are
    known without reading any of them.
    """
    getters, shape_getters = {}, {}
    for name, spec in mapping.items():
        if isinstance(spec, str):
            getters[name] = (lambda k=spec: source[k])
            shape_getters[name] = (lambda k=spec: source.shape(k))
        else:
            getters[name] = (lambda ks=spec: torch.cat([source[k] for k in ks], dim=0))
            shape_getters[name] = (lambda ks=spec: _concat_shape([source.shape(k) for k in ks]))
    return TensorSource(source.description, getters, shape_getters, source.meta, source.tag)


def _concat_shape(shapes: Sequence[Tuple[int, ...]]) -> Tuple[int, ...]:
    return (sum(s[0] for s in shapes),) + tuple(shapes[0][1:])


def open_checkpoint(path: str) -> TensorSource:
    """Open a checkpoint file or Hugging Face model folder for lazy reading."""
    if os.path.isdir(path):
        for name in HF_FILE_NAMES:
            candidate = os.path.join(path, name)
            if os.path.isfile(candidate):
                return open_checkpoint(candidate)
        from .consolidate import is_deepspeed_checkpoint  # consolidate imports this module
        if is_deepspeed_checkpoint(path):
            raise CheckpointReadError(
                f'{path} is a DeepSpeed checkpoint folder (ZeRO partitions), not one file: '
                f'write it as one with tools/consolidate_checkpoint.py {path} '
                'model.safetensors, then use that file.')
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


def as_source(checkpoint: Union[str, TensorSource]) -> TensorSource:
    """``checkpoint`` itself if already open, else :func:`open_checkpoint` of it
    (callers that read one file several times open it once)."""
    return checkpoint if isinstance(checkpoint, TensorSource) else open_checkpoint(checkpoint)


def read_config_json(checkpoint: str) -> Optional[dict]:
    """The Hugging Face ``config.json`` of a checkpoint: in its folder, or beside
    its file (None if there is none). Only the arch detection reads it, so a
    stray ``config.json`` never stops a checkpoint of known arch from loading."""
    folder = (checkpoint if os.path.isdir(checkpoint)
              else os.path.dirname(os.path.abspath(checkpoint)))
    path = os.path.join(folder, 'config.json')
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            config = json.load(f)
    except (OSError, ValueError) as exc:
        raise CheckpointReadError(f'Cannot read {path}: {exc}. Fix or remove it.') from exc
    if not isinstance(config, dict):
        raise CheckpointReadError(f'{path} holds a {type(config).__name__}, not a JSON object.')
    return config


def read_safetensors_header(path: str) -> Tuple[Dict[str, Tuple[int, ...]], dict]:
    """The tensor shapes and the meta (``dataset_meta``, if stored) of a
    safetensors file, without reading any tensor."""
    shapes, meta, _ = _read_header(path)
    return shapes, meta


def _read_header(path: str) -> Tuple[Dict[str, Tuple[int, ...]], dict, Optional[str]]:
    """Shapes, meta and this project's format tag (or None) of a safetensors file."""
    try:
        with safe_open(path, framework='pt') as f:
            shapes = {key: f.get_slice(key).get_shape() for key in f.keys()}
            metadata = f.metadata() or {}
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointReadError(f'Cannot read safetensors file {path}: {exc}') from exc
    meta = {}
    if DATASET_META_KEY in metadata:
        try:
            meta[DATASET_META_KEY] = json.loads(metadata[DATASET_META_KEY])
        except ValueError as exc:
            raise CheckpointReadError(f'{path}: metadata {DATASET_META_KEY!r} is not JSON: '
                                      f'{exc}') from exc
    tag = metadata.get('format')  # other writers store e.g. 'pt' there
    return shapes, meta, tag if tag in (BACKBONE_TAG, MODEL_TAG) else None


def _open_safetensors(path: str) -> TensorSource:
    shapes, meta, tag = _read_header(path)

    def getter(key: str) -> Callable[[], torch.Tensor]:
        def get() -> torch.Tensor:
            with safe_open(path, framework='pt') as f:
                return f.get_tensor(key)
        return get

    return TensorSource(path, {key: getter(key) for key in shapes},
                        {key: (lambda s=shape: s) for key, shape in shapes.items()}, meta=meta,
                        tag=tag)


def _safe_load(path: str, mmap: bool) -> object:
    # mmengine's own checkpoints pickle a message hub (numpy arrays): allow
    # exactly those globals. (torch's safe_globals() context manager would be
    # narrower, but on exit it drops globals allow-listed elsewhere.)
    allow_mmengine_checkpoint_globals()
    return torch.load(path, map_location='cpu', weights_only=True, mmap=mmap)


def _open_torch(path: str) -> TensorSource:
    try:
        obj = _safe_load(path, mmap=True)
    except RuntimeError as exc:
        if 'mmap' not in str(exc):
            raise _torch_load_error(path, exc) from exc
        # Files in torch's legacy (non-zip) format cannot be memory-mapped.
        try:
            obj = _safe_load(path, mmap=False)
        except Exception as exc2:
            raise _torch_load_error(path, exc2) from exc2
    except Exception as exc:
        raise _torch_load_error(path, exc) from exc
    state = unwrap_state_dict(obj, path)
    meta = obj.get('meta') if isinstance(obj, Mapping) else None
    return source_from_state_dict(path, state, meta if isinstance(meta, Mapping) else None)


def _torch_load_error(path: str, exc: Exception) -> CheckpointReadError:
    size = os.path.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(8)
    # First what the file is: torch words the failure on any non-pickle (an
    # image, say) as a weights-only refusal and suggests weights_only=False.
    if not head.startswith(_TORCH_FILE_STARTS):
        # The unpickler's own message for such a file says nothing useful ("101.").
        what = 'it is empty' if not head else f'it starts with {head!r}'
        return CheckpointReadError(
            f'{path} ({size} bytes) is not a torch checkpoint: {what}, not the zip archive '
            'or pickle that torch.save writes. Pass the checkpoint file itself (.pth, .pt, '
            '.bin or .safetensors); if this should be one, download or copy it again.')
    if 'weights_only' in str(exc) or 'Unsupported global' in str(exc):
        return CheckpointReadError(
            f'Cannot load {path} with torch.load(weights_only=True): {exc}. Weight files '
            'are never unpickled unsafely; if you trust the file, re-save its state dict '
            '(or convert it to safetensors) in a trusted environment.')
    detail = str(exc).strip().rstrip('.') or type(exc).__name__
    return CheckpointReadError(
        f'Cannot read {path} ({size} bytes) as a torch checkpoint: {detail}. The file is '
        'truncated (an interrupted download or copy?) or damaged: compare its size with '
        'the published one and download it again.')


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
        if not isinstance(weight_map, dict):
            raise TypeError(f'weight_map is a {type(weight_map).__name__}')
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointReadError(f'{path} is not a sharded-checkpoint index with a '
                                  f"'weight_map': {exc}") from exc
    shards = _LazyShards(path, weight_map)
    getters = {key: (lambda k=key: shards.open(k)[k]) for key in weight_map}
    shape_getters = {key: (lambda k=key: shards.open(k).shape(k)) for key in weight_map}
    return TensorSource(path, getters, shape_getters)


class _LazyShards:
    """The shards of an index, each opened (and checked) on first use."""

    def __init__(self, index: str, weight_map: Dict[str, str]) -> None:
        self.index = index
        self.weight_map = weight_map
        self.folder = os.path.dirname(index)
        self._open: Dict[str, TensorSource] = {}

    def open(self, key: str) -> TensorSource:
        shard = self.weight_map[key]
        if shard not in self._open:
            held = sorted(k for k, s in self.weight_map.items() if s == shard)
            shard_path = os.path.join(self.folder, shard)
            if not os.path.isfile(shard_path):
                more = f' ... (+{len(held) - _SHOWN} more)' if len(held) > _SHOWN else ''
                raise CheckpointReadError(
                    f'Shard {shard_path} listed in {self.index} is missing, and {key!r} is '
                    f'read from it. It holds {len(held)} tensors: '
                    f'{", ".join(held[:_SHOWN])}{more}. Download that shard (only the '
                    'shards holding the tensors being loaded are needed).')
            source = open_checkpoint(shard_path)
            lacking = [k for k in held if k not in source]
            if lacking:
                raise CheckpointReadError(f'{self.index} maps {lacking[0]!r} to {shard}, which '
                                          'lacks it: the index and its shards do not match.')
            self._open[shard] = source
        return self._open[shard]
