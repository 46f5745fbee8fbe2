"""Export a segmentor to ONNX and check it with onnxruntime; see docs/export.md.

See ``python tools/export_onnx.py --help`` and :mod:`mmseg_internvit.apis.export_onnx`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    sys.exit(run_tool('export_onnx'))
