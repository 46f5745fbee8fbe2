"""``tools/convert_checkpoint.py``: convert any supported InternViT checkpoint to a
checkpoint file of this project.

    python tools/convert_checkpoint.py SRC DST [--dtype bf16] [--arch 6b|auto]
        [--num-heads N] [--overwrite] [--debug]

SRC may be a Hugging Face model folder (InternViT remote code, InternVL chat,
or transformers' ``*-hf`` port), a sharded ``*.index.json``, a safetensors /
``.bin`` file, an upstream InternViT ``.pth``, an mmengine checkpoint of this
project, or a segmentor released with InternViT-6B. Backbones are written as
``.safetensors`` (of a whole model of this project, only its backbone:
``tools/consolidate_checkpoint.py`` writes the whole model); a released
segmentor is written whole (our key layout, its classes and palette kept) as
``.safetensors`` or mmengine ``.pth``.

Everything is checked before anything is written: SRC readable, DST's folder
writable, DST not existing (unless ``--overwrite``), and with ``--arch`` (a
preset, or ``auto`` to read it from SRC) that SRC's backbone (a segmentor's
too) fits that InternViT. DST appears only complete (temporary file, then
rename), with the permissions the umask gives new files; an existing DST is
never deleted.
"""
import argparse
import os.path as osp
from collections import Counter
from typing import List, Optional, Union

from mmseg_internvit.atomic_io import check_writable
from mmseg_internvit.dtypes import DTYPE_CHOICES, to_torch_dtype
from .errors import ToolError, add_debug_flag


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='tools/convert_checkpoint.py',
                                     description=__doc__.split('\n\n')[0].split(': ', 1)[1])
    parser.add_argument('src', help='checkpoint file or Hugging Face model folder')
    parser.add_argument('dst', help='output .safetensors path (.pth also for segmentors)')
    parser.add_argument('--dtype', choices=DTYPE_CHOICES, help='cast tensors (default: keep)')
    parser.add_argument('--arch', help="InternViT arch preset to verify SRC's backbone "
                                       "against, or 'auto' to read it from SRC")
    parser.add_argument('--num-heads', type=int, metavar='N',
                        help='with --arch auto: the head count, for a width no published '
                             'model has and no config.json beside SRC states')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def check_output(dst: str, src: str, overwrite: bool, suffixes) -> None:
    """Refuse an output that cannot or must not be written, before any reading."""
    from mmseg_internvit.checkpoint.writer import check_output_path
    folder = check_output_path(dst, suffixes)
    try:
        check_writable(folder)  # creates and removes a file: os.access misjudges root, /sys
    except OSError as e:
        raise ToolError(f'cannot write DST {dst}: {e.strerror or e} ({folder}); give a DST '
                        'in a writable folder') from None
    if osp.exists(src) and osp.exists(dst) and osp.samefile(src, dst):
        raise ToolError(f'DST {dst} is SRC itself; write the conversion to another file')
    if osp.isdir(dst):
        raise ToolError(f'DST {dst} is a folder; give a file name ending in {suffixes[0]}')
    if osp.exists(dst) and not overwrite:
        raise ToolError(f'{dst} exists; pass --overwrite to replace it')


def arch_argument(arch: Optional[str], num_heads: Optional[int]) -> Union[str, dict, None]:
    """``--arch`` and ``--num-heads`` as an ``arch`` argument; a preset name is
    checked here, before SRC is read."""
    from mmseg_internvit.models.backbones.arch_zoo import is_auto_arch, resolve_arch
    if num_heads is not None:
        if arch != 'auto':
            raise ToolError(f'--num-heads {num_heads} goes with --arch auto only (a preset '
                            'fixes the head count)')
        if num_heads < 1:
            raise ToolError(f'--num-heads must be at least 1, got {num_heads}')
        return dict(auto=True, num_heads=num_heads)
    if arch is not None and not is_auto_arch(arch):
        resolve_arch(arch)  # an unknown preset raises, naming the presets
    return arch


def check_arch(arch: Union[str, dict], source) -> dict:
    """The arch SRC's backbone must fit, checked by shapes (no weights are read).

    Args:
        arch: A preset, ``'auto'`` or ``dict(auto=True, num_heads=N)``.
        source: SRC, opened (a :class:`~mmseg_internvit.checkpoint.TensorSource`);
            a whole segmentor's backbone is checked.
    """
    import torch

    from mmseg_internvit.checkpoint import load_backbone_weights
    from mmseg_internvit.checkpoint.arch_detect import UnknownHeadCountError
    from mmseg_internvit.models.backbones.arch_zoo import resolve_arch
    from mmseg_internvit.models.backbones.intern_vit import InternViT
    try:
        arch = resolve_arch(arch, source)
    except UnknownHeadCountError as e:
        raise ToolError(f'{e.path} holds an InternViT of width {e.width}, which no published '
                        'model has, and no config.json beside it states its head count '
                        '(num_heads): give it with --num-heads N (or a preset with --arch)'
                        ) from None
    with torch.device('meta'):  # shapes only: no memory for a 6B model
        model = InternViT(arch=arch)
    # With 'auto' this still checks that every tensor of the arch just read is there.
    load_backbone_weights(model, source, copy=False)
    return arch


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmseg_internvit.checkpoint import (backbone_key_map, convert_segmentor,
                                            convert_to_safetensors, open_checkpoint)
    from mmseg_internvit.checkpoint.writer import (MODEL_SUFFIXES, is_released_segmentor,
                                                   released_segmentor_key_map)
    if not osp.exists(args.src):
        raise FileNotFoundError(f'SRC {args.src} does not exist')
    check_output(args.dst, args.src, args.overwrite, MODEL_SUFFIXES)
    arch = arch_argument(args.arch, args.num_heads)
    source = open_checkpoint(args.src)  # once: a legacy-format .pth is read whole
    whole_model = is_released_segmentor(source)
    if args.dst.endswith('.pth'):
        released_segmentor_key_map(source)  # only a released segmentor can be a .pth
    if arch:
        check_arch(arch, source)
    dtype = to_torch_dtype(args.dtype) if args.dtype else None
    if whole_model:
        count = convert_segmentor(source, args.dst, dtype)
        done = f'{count} tensors, source format: upstream-segmentor'
    else:
        left_out = _left_out(backbone_key_map(source.keys()))
        if left_out:
            print(f'note: {args.src} is a whole model; only its backbone is written, without '
                  f'{left_out} (tools/consolidate_checkpoint.py writes the whole model)')
        done = f'source format: {convert_to_safetensors(source, args.dst, dtype)}'
    print(f'wrote {args.dst} ({done})')
    return 0


def _left_out(key_map) -> str:
    """What a backbone conversion leaves out of a whole model of this project
    (``'decode_head.* (3 tensors), neck.* (4 tensors)'``), or ``''``."""
    if key_map.format != 'mmengine' or not key_map.ignored:
        return ''
    parts = Counter(key.split('.')[0] for key in key_map.ignored)
    return ', '.join(f'{part}.* ({count} tensor{"s" * (count > 1)})'
                     for part, count in sorted(parts.items()))
