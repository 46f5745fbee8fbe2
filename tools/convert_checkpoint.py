"""Convert any supported InternViT checkpoint to a checkpoint file of this project.

Usage:
    python tools/convert_checkpoint.py SRC DST [--dtype bfloat16] [--arch 6b|auto]

SRC may be a Hugging Face model folder (InternViT remote code, InternVL chat,
or transformers' ``*-hf`` port), a sharded ``*.index.json``, a safetensors /
``.bin`` file, an upstream InternViT ``.pth``, an mmengine checkpoint of this
project, or a segmentor released with InternViT-6B. Backbones are written as
``.safetensors``; a released segmentor is written whole (our key layout, its
classes and palette kept) as ``.safetensors`` or mmengine ``.pth``. With
``--arch`` (a preset, or ``auto`` to read it from SRC) the result is also
checked by loading its backbone into that InternViT.
"""
import argparse
import os
import sys

from mmseg_internvit.models.backbones.intern_vit import DTYPES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='checkpoint file or Hugging Face model folder')
    parser.add_argument('dst', help='output .safetensors path (.pth also for segmentors)')
    parser.add_argument('--dtype', choices=sorted(DTYPES), help='cast tensors (default: keep)')
    parser.add_argument('--arch', help="InternViT arch preset to verify the result against, "
                                       "or 'auto' to read it from SRC")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_internvit.checkpoint import (CheckpointMismatchError, CheckpointReadError,
                                            convert_segmentor, convert_to_safetensors,
                                            load_backbone_weights)
    from mmseg_internvit.checkpoint.writer import (MODEL_SUFFIXES, check_output_path,
                                                   is_released_segmentor)
    from mmseg_internvit.models.backbones.intern_vit import resolve_arch
    dtype = DTYPES.get(args.dtype)
    try:
        # The output path, then the arch (read from SRC for 'auto') are checked
        # before anything is written.
        check_output_path(args.dst, MODEL_SUFFIXES)
        arch = resolve_arch(args.arch, args.src) if args.arch else None
        if args.dst.endswith('.pth') or is_released_segmentor(args.src):
            count = convert_segmentor(args.src, args.dst, dtype)
            done = f'{count} tensors, source format: upstream-segmentor'
        else:
            done = f'source format: {convert_to_safetensors(args.src, args.dst, dtype)}'
    except (CheckpointReadError, CheckpointMismatchError, FileNotFoundError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    if arch is not None:
        from mmseg_internvit.models import InternViT
        model = InternViT(arch=arch, dtype=args.dtype or 'float32',
                          init_cfg=dict(type='Pretrained', checkpoint=args.dst))
        try:
            load_backbone_weights(model, args.dst)
        except CheckpointMismatchError as exc:
            os.remove(args.dst)  # a file that fails its check must not look usable
            print(f'error: {exc} ({args.dst} removed)', file=sys.stderr)
            return 1
    print(f'wrote {args.dst} ({done})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
