"""Write state dicts (backbone or whole model) as checkpoint files of this project."""
import json
import os
from typing import Mapping, Optional, Sequence, Union

import torch
from safetensors.torch import save_file

from mmseg_internvit.atomic_io import atomic_path
from .key_maps import MMENGINE_PREFIX, backbone_key_map
from .loader import CheckpointMismatchError, MatchReport, format_label, mismatch_message
from .readers import (BACKBONE_TAG, DATASET_META_KEY, MODEL_TAG, TensorSource, as_source,
                      renamed_source)
from .segmentor_keys import dataset_meta_from, segmentor_key_map

MODEL_SUFFIXES = ('.safetensors', '.pth')


def check_output_path(dst: str, suffixes: Sequence[str] = ('.safetensors',)) -> str:
    """Validate an output path before any (possibly long) read; return its folder."""
    if not str(dst).endswith(tuple(suffixes)):
        raise ValueError(f'output {dst} must end with {" or ".join(suffixes)}')
    folder = os.path.dirname(os.path.abspath(dst))
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise NotADirectoryError(f'Output folder {folder} of {dst} is a file, not a folder; '
                                 'give an output path in a folder.')
    if not os.path.isdir(folder):
        raise FileNotFoundError(f'Output folder {folder} does not exist; create it first.')
    return folder


def save_safetensors(state: Mapping[str, torch.Tensor], dst: str,
                     dataset_meta: Optional[dict] = None) -> None:
    """Save ``state`` to ``dst`` atomically: temp file, then rename.

    Args:
        state: Tensors to write (a backbone's or a whole model's).
        dst: ``.safetensors`` path.
        dataset_meta: Classes and palette of a whole model, kept as JSON in the
            file's metadata (read back by the loaders and by mmengine).
    """
    check_output_path(dst)
    tensors = {k: v.detach().contiguous() for k, v in state.items()}
    # Whole models keep mmengine's 'backbone.' names; a backbone's names are bare.
    whole = dataset_meta is not None or any(k.startswith(MMENGINE_PREFIX) for k in tensors)
    metadata = {'format': MODEL_TAG if whole else BACKBONE_TAG}
    if dataset_meta is not None:
        metadata[DATASET_META_KEY] = json.dumps(dataset_meta)
    with atomic_path(dst) as tmp:
        save_file(tensors, tmp, metadata=metadata)


def save_model_checkpoint(state: Mapping[str, torch.Tensor], dst: str,
                          dataset_meta: Optional[dict] = None) -> None:
    """Save a whole model as ``.safetensors`` or as an mmengine ``.pth``
    (``{'meta': {'dataset_meta': ...}, 'state_dict': ...}``), atomically."""
    check_output_path(dst, MODEL_SUFFIXES)
    if dst.endswith('.safetensors'):
        save_safetensors(state, dst, dataset_meta)
        return
    meta = {} if dataset_meta is None else {'dataset_meta': dataset_meta}
    checkpoint = {'meta': meta, 'state_dict': {k: v.detach().contiguous()
                                               for k, v in state.items()}}
    with atomic_path(dst) as tmp:
        torch.save(checkpoint, tmp)


def _cast(tensor: torch.Tensor, dtype: Optional[torch.dtype]) -> torch.Tensor:
    return tensor.to(dtype) if dtype is not None and tensor.is_floating_point() else tensor


def convert_to_safetensors(src: Union[str, TensorSource], dst: str,
                           dtype: torch.dtype = None) -> str:
    """Convert any supported checkpoint's backbone (a path, or a checkpoint
    already opened) to a safetensors file.

    Returns:
        The format detected in ``src`` (one of :data:`~.key_maps.FORMATS`, or
        the tag of a file this project wrote, see :func:`~.loader.format_label`).
    """
    check_output_path(dst)
    source = as_source(src)
    src = source.description
    key_map = backbone_key_map(source.keys())
    label = format_label(source, key_map.format)
    if key_map.incomplete:
        report = MatchReport(incomplete=key_map.incomplete)
        raise CheckpointMismatchError(mismatch_message(
            report, f'{src} (format {label!r}) cannot be converted.', key_map.mapping, []))
    if 'cls_token' not in key_map.mapping:
        raise ValueError(f'{src} (format {label!r}) has no InternViT cls_token: not an '
                         'InternViT checkpoint, or its backbone is under a prefix other '
                         "than 'backbone.'.")
    ours = renamed_source(source, key_map.mapping)
    save_safetensors({k: _cast(ours[k], dtype) for k in ours.keys()}, dst)
    return label


def is_released_segmentor(src: Union[str, TensorSource]) -> bool:
    """Whether ``src`` is a segmentor in the released upstream (mmseg 0.30) layout."""
    return segmentor_key_map(as_source(src).keys())[0] == 'upstream-segmentor'


def released_segmentor_key_map(source: TensorSource) -> dict:
    """Our name -> key of a released upstream segmentor; raise for any other checkpoint."""
    fmt, mapping = segmentor_key_map(source.keys())
    if fmt != 'upstream-segmentor':
        raise ValueError(f'{source.description} is not a released upstream segmentor (no '
                         'backbone.up1..4 FPN and no decode_head.norm linear probe); to '
                         'convert its backbone, write a .safetensors output.')
    return mapping


def convert_segmentor(src: Union[str, TensorSource], dst: str, dtype: torch.dtype = None) -> int:
    """Write a released upstream segmentor as a checkpoint of our layout.

    Keys are renamed to our configs' (FPN -> ``neck.scales``, linear-probe
    BN -> ``decode_head.bn``), ``CLASSES``/``PALETTE`` become ``dataset_meta``.

    Args:
        src: The released ``.pth`` (its path, or the checkpoint already opened).
        dst: ``.safetensors`` or ``.pth`` output (mmengine layout).
        dtype: Cast floating tensors (default: keep; upstream's backbone is bf16).

    Returns:
        The number of tensors written.
    """
    check_output_path(dst, MODEL_SUFFIXES)
    source = as_source(src)
    mapping = released_segmentor_key_map(source)
    state = {ours: _cast(source[key], dtype) for ours, key in mapping.items()}
    save_model_checkpoint(state, dst, dataset_meta_from(source.meta))
    return len(state)
