"""Let mmengine's own checkpoint loading read every whole-model file we do.

mmengine resolves local checkpoint paths with one loader (``torch.load``).
Registering a loader for the local scheme that reads ``*.safetensors`` with
safetensors, renames the segmentors released with InternViT-6B (mmseg 0.30
layout) to ours and turns their ``CLASSES``/``PALETTE`` into ``dataset_meta``
(everything else is mmengine's own loader) makes ``load_from``,
``tools/test.py``, ``init_model`` and ``MMSegInferencer`` accept them. A
``pos_embed`` on another grid is adopted by ``InternViT._load_from_state_dict``.
"""
from typing import Mapping

from mmseg_internvit import runner_import  # noqa: F401 (first: see that module)
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local

from .consolidate import is_deepspeed_checkpoint, open_deepspeed_checkpoint
from .readers import WRAPPER_KEYS, CheckpointReadError, read_safetensors_header
from .segmentor_keys import convert_upstream_state_dict, dataset_meta_from


def _load_safetensors(filename: str, map_location) -> dict:
    from safetensors.torch import load_file
    device = map_location if isinstance(map_location, str) else 'cpu'
    _, meta = read_safetensors_header(filename)  # names the file on a bad header or meta
    try:
        state = load_file(filename, device=device)
    except Exception as exc:  # safetensors raises its own error types
        raise CheckpointReadError(f'Cannot read safetensors file {filename}: {exc}') from exc
    return {'meta': meta, 'state_dict': state}


def with_released_layout_converted(checkpoint: dict) -> dict:
    """``checkpoint`` with a released upstream segmentor's keys and meta made ours."""
    if not isinstance(checkpoint, Mapping):
        return checkpoint
    wrapper = next((k for k in WRAPPER_KEYS if isinstance(checkpoint.get(k), Mapping)), None)
    state = checkpoint[wrapper] if wrapper else checkpoint
    converted = convert_upstream_state_dict(state)
    if converted is None:
        return checkpoint
    meta = dict(checkpoint.get('meta') or {}) if wrapper else {}
    found = dataset_meta_from(meta)
    if found is not None:
        meta['dataset_meta'] = found
    return {'meta': meta, 'state_dict': converted}


def _load_deepspeed_folder(path: str) -> dict:
    # For runners without DeepSpeed (plain, DDP, FSDP): the fp32 weights
    # reassembled from the ZeRO partitions, with the meta of the model states.
    source = open_deepspeed_checkpoint(path)
    return {'meta': source.meta, 'state_dict': {name: source[name] for name in source.keys()}}


def _load_local(filename: str, map_location=None):
    if str(filename).endswith('.safetensors'):
        return _load_safetensors(filename, map_location)
    if is_deepspeed_checkpoint(str(filename)):
        return _load_deepspeed_folder(str(filename))
    return with_released_layout_converted(load_from_local(filename, map_location))


def register_safetensors_loader() -> None:
    """Register the local-file loader above with mmengine (idempotent)."""
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local, force=True)
