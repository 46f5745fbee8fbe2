"""``tools/consolidate_checkpoint.py``: write a sharded training checkpoint as one
safetensors file of the whole model.

    python tools/consolidate_checkpoint.py SRC DST.safetensors [--dtype bf16]
        [--overwrite] [--debug]

SRC: a DeepSpeed checkpoint folder (``work_dir/iter_N.pth/`` with ZeRO-1/2/3
partitions), an FSDP full-state checkpoint or any mmengine ``.pth``. The result
loads with ``tools/test.py CONFIG DST``, ``tools/infer.py`` and ``load_from``.
DST is checked before SRC is read, appears only complete, and an existing DST
is replaced only with ``--overwrite``.
"""
import argparse
import os.path as osp
from typing import List, Optional

from mmseg_internvit.dtypes import DTYPE_CHOICES, to_torch_dtype
from .convert_checkpoint import check_output
from .errors import add_debug_flag


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog='tools/consolidate_checkpoint.py',
                                     description=__doc__.split('\n\n')[0].split(': ', 1)[1])
    parser.add_argument('src', help='checkpoint folder or file')
    parser.add_argument('dst', help='output .safetensors file')
    parser.add_argument('--dtype', choices=DTYPE_CHOICES, help='cast floating tensors')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing DST')
    add_debug_flag(parser)
    args = parser.parse_args(argv)
    from mmseg_internvit.checkpoint.consolidate import consolidate_to_safetensors
    if not osp.exists(args.src):
        raise FileNotFoundError(f'SRC {args.src} does not exist')
    check_output(args.dst, args.src, args.overwrite, ('.safetensors',))
    dtype = to_torch_dtype(args.dtype) if args.dtype else None
    count = consolidate_to_safetensors(args.src, args.dst, dtype)
    print(f'wrote {args.dst} ({count} tensors)')
    return 0
