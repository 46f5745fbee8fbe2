"""Segment images with a trained config + checkpoint; see docs/inference.md.

    python tools/infer.py CONFIG CHECKPOINT INPUTS... --out-dir DIR [--batch-size N]
        [--tile H W --stride H W] [--dtype bf16|fp16|fp32] [--compile] [--tta] [--opacity 0.5]
        [--save-logits] [--save-areas] [--device cpu|cuda] [--debug]
    python tools/infer.py --onnx MODEL.onnx INPUTS... --out-dir DIR [...]   (docs/export.md)
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('infer'))
