"""Backbone benchmarks behind ``tools/benchmark.py``.

Modules: :mod:`.flops` (analytic FLOP counts), :mod:`.measure` (timers and
peak-memory meters), :mod:`.steps` (the timed model steps and the reference
GEMM), :mod:`.load_check` (6B-style checkpoint write/load in a fresh process)
and :mod:`.report` (table, JSON and plot). Only torch, timm and mmengine are
needed, never mmseg/mmdet/mmcv, so a bare GPU machine can run them.
"""
