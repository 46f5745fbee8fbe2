"""Convert any supported InternViT checkpoint to a checkpoint file of this project.

Supported: HF, chat, -hf, upstream and released-segmentor files.

See ``python tools/convert_checkpoint.py --help`` and
:mod:`mmseg_internvit.apis.convert_checkpoint`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('convert_checkpoint', register='checkpoint_io'))
