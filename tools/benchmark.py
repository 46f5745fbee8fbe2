"""Benchmark InternViT backbone steps (speed, memory, FLOP/s against a GEMM) and
batched sliding-window inference; see docs/benchmarks.md.

See ``python tools/benchmark.py --help`` and :mod:`mmseg_internvit.apis.benchmark`.
"""
import sys

from mmseg_internvit.apis.errors import run_tool

if __name__ == '__main__':
    # No registration: the backbone modes run where only torch, timm and
    # mmengine are installed (the slide mode registers what it needs).
    sys.exit(run_tool('benchmark', register='none'))
