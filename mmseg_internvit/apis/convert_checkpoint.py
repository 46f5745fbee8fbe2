"""``tools/convert_checkpoint.py``: convert any supported InternViT checkpoint to a
checkpoint file of this project.

    python tools/convert_checkpoint.py SRC DST [--dtype bf16] [--arch 6b|auto]
        [--overwrite] [--debug]

SRC may be a Hugging Face model folder (InternViT remote code, InternVL chat,
or transformers' ``*-hf`` port), a sharded ``*.index.json``, a safetensors /
``.bin`` file, an upstream InternViT ``.pth``, an mmengine checkpoint of this
project, or a segmentor released with InternViT-6B. Backbones are written as
``.safetensors``; a released segmentor is written whole (our key layout, its
classes and palette kept) as ``.safetensors`` or mmengine ``.pth``.

Everything is checked before anything is written: SRC readable, DST's folder
writable, DST not existing (unless ``--overwrite``), and with ``--arch`` (a
preset, or ``auto`` to read it from SRC) that SRC's backbone fits that
InternViT. DST appears only complete (temporary file, then rename), with the
permissions the umask gives new files; an existing DST is never deleted.
"""
import argparse
import os
import os.path as osp
from typing import List, Optional

from mmseg_internvit.dtypes import DTYPE_CHOICES, to_torch_dtype
from .errors import ToolError, add_debug_flag


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog='tools/convert_checkpoint.py',
                                     description=__doc__.split('\n\n')[0].split(': ', 1)[1])
    parser.add_argument('src', help='checkpoint file or Hugging Face model folder')
    parser.add_argument('dst', help='output .safetensors path (.pth also for segmentors)')
    parser.add_argument('--dtype', choices=DTYPE_CHOICES, help='cast tensors (default: keep)')
    parser.add_argument('--arch', help="InternViT arch preset to verify SRC against, "
                                       "or 'auto' to read it from SRC")
    parser.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    add_debug_flag(parser)
    return parser.parse_args(argv)


def check_output(dst: str, src: str, overwrite: bool, suffixes) -> None:
    """Refuse an output that cannot or must not be written, before any reading."""
    from mmseg_internvit.checkpoint.writer import check_output_path
    folder = check_output_path(dst, suffixes)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ToolError(f'cannot write to {folder} (permission denied); choose another DST')
    if osp.exists(src) and osp.exists(dst) and osp.samefile(src, dst):
        raise ToolError(f'DST {dst} is SRC itself; write the conversion to another file')
    if osp.isdir(dst):
        raise ToolError(f'DST {dst} is a folder; give a file name ending in {suffixes[0]}')
    if osp.exists(dst) and not overwrite:
        raise ToolError(f'{dst} exists; pass --overwrite to replace it')


def check_arch(arch_name: str, source) -> dict:
    """The arch SRC's backbone must fit, checked by shapes (no weights are read).

    Args:
        arch_name: A preset, or ``'auto'``.
        source: SRC, opened (a :class:`~mmseg_internvit.checkpoint.TensorSource`).
    """
    import torch

    from mmseg_internvit.checkpoint import load_backbone_weights
    from mmseg_internvit.models.backbones.arch_zoo import resolve_arch
    from mmseg_internvit.models.backbones.intern_vit import InternViT
    arch = resolve_arch(arch_name, source)
    with torch.device('meta'):  # shapes only: no memory for a 6B model
        model = InternViT(arch=arch)
    # With 'auto' this still checks that every tensor of the arch just read is there.
    load_backbone_weights(model, source, copy=False)
    return arch


def main(argv: Optional[List[str]] = None) -> int:
    args = parse_args(argv)
    from mmseg_internvit.checkpoint import (convert_segmentor, convert_to_safetensors,
                                            open_checkpoint)
    from mmseg_internvit.checkpoint.writer import MODEL_SUFFIXES, is_released_segmentor
    if not osp.exists(args.src):
        raise FileNotFoundError(f'SRC {args.src} does not exist')
    check_output(args.dst, args.src, args.overwrite, MODEL_SUFFIXES)
    source = open_checkpoint(args.src)  # once: a legacy-format .pth is read whole
    whole_model = args.dst.endswith('.pth') or is_released_segmentor(source)
    if args.arch and not whole_model:
        check_arch(args.arch, source)
    dtype = to_torch_dtype(args.dtype) if args.dtype else None
    if whole_model:
        count = convert_segmentor(source, args.dst, dtype)
        done = f'{count} tensors, source format: upstream-segmentor'
    else:
        done = f'source format: {convert_to_safetensors(source, args.dst, dtype)}'
    print(f'wrote {args.dst} ({done})')
    return 0
