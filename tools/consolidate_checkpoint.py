"""Write a sharded training checkpoint (DeepSpeed ZeRO folder, FSDP) as one safetensors file.

See ``python tools/consolidate_checkpoint.py --help`` and
:mod:`mmseg_internvit.apis.consolidate_checkpoint`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('consolidate_checkpoint', register='checkpoint_io'))
