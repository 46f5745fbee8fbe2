"""Convert any supported InternViT checkpoint to one safetensors file of this project.

Usage:
    python tools/convert_checkpoint.py SRC DST [--dtype bfloat16] [--arch 6b]

SRC may be a Hugging Face model folder (InternViT or InternVL chat), a sharded
``*.index.json``, a safetensors / ``.bin`` file, an upstream segmentation
``.pth`` or an mmengine checkpoint of this project. With ``--arch`` the result
is also checked by loading it into that InternViT preset.
"""
import argparse
import os
import sys

from mmseg_internvit.models.backbones.intern_vit import DTYPES


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='checkpoint file or Hugging Face model folder')
    parser.add_argument('dst', help='output .safetensors path')
    parser.add_argument('--dtype', choices=sorted(DTYPES), help='cast tensors (default: keep)')
    parser.add_argument('--arch', help='InternViT arch preset to verify the result against')
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    from mmseg_internvit.checkpoint import (CheckpointMismatchError, CheckpointReadError,
                                            convert_to_safetensors, load_backbone_weights)
    try:
        fmt = convert_to_safetensors(args.src, args.dst, DTYPES.get(args.dtype))
    except (CheckpointReadError, CheckpointMismatchError, FileNotFoundError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    if args.arch:
        from mmseg_internvit.models import InternViT
        model = InternViT(arch=args.arch, dtype=args.dtype or 'float32',
                          init_cfg=dict(type='Pretrained', checkpoint=args.dst))
        try:
            load_backbone_weights(model, args.dst)
        except CheckpointMismatchError as exc:
            os.remove(args.dst)  # a file that fails its check must not look usable
            print(f'error: {exc} ({args.dst} removed)', file=sys.stderr)
            return 1
    print(f'wrote {args.dst} (source format: {fmt})')
    return 0


if __name__ == '__main__':
    sys.exit(main())
