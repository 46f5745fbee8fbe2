"""Write a sharded training checkpoint as one safetensors file of the whole model.

Usage:
    python tools/consolidate_checkpoint.py SRC DST.safetensors [--dtype bfloat16]

SRC: a DeepSpeed checkpoint folder (``work_dir/iter_N.pth/`` with ZeRO-1/2/3
partitions), an FSDP full-state checkpoint or any mmengine ``.pth``. The result
loads with ``tools/test.py CONFIG DST``, ``tools/infer.py`` and ``load_from``.
"""
import argparse
import sys

from mmseg_internvit.models.backbones.intern_vit import DTYPES


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='checkpoint folder or file')
    parser.add_argument('dst', help='output .safetensors file')
    parser.add_argument('--dtype', choices=sorted(DTYPES), help='cast floating tensors')
    args = parser.parse_args(argv)
    import mmseg_internvit  # noqa: F401  (safe-loading allow-list)
    from mmseg_internvit.checkpoint import CheckpointReadError
    from mmseg_internvit.checkpoint.consolidate import consolidate_to_safetensors
    try:
        count = consolidate_to_safetensors(args.src, args.dst, DTYPES.get(args.dtype))
    except (CheckpointReadError, FileNotFoundError, ValueError) as exc:
        print(f'error: {exc}', file=sys.stderr)
        return 1
    print(f'wrote {args.dst} ({count} tensors)')
    return 0


if __name__ == '__main__':
    sys.exit(main())
