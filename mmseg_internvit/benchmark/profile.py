"""Where a step's time goes: one step under ``torch.profiler``, its self time grouped
into matrix products, attention, fused (compiled) kernels and the rest.

On CUDA the groups are built from the GPU kernels' own time, on the CPU from the
operators' self time. "The rest" is what the FLOP count ignores (norms, dtype
casts, scaling, residual adds, activations, copies): the memory-bound work that
separates a step from the GEMM rate.
"""
import re
from typing import Callable, Dict, Tuple

import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from .measure import synchronize

# First match wins: attention kernels often carry GEMM-like names (cutlass, gemm).
CATEGORIES: Tuple[Tuple[str, re.Pattern], ...] = (
    ('attention', re.compile(r'flash|fmha|attention|sdpa|softmax', re.IGNORECASE)),
    ('gemm', re.compile(r'gemm|nvjet|xmma|cublas|cutlass|^aten::(mm|addmm|bmm|baddbmm)$',
                        re.IGNORECASE)),
    # Inductor's generated kernels: Triton on CUDA, C++ on the CPU (where the
    # compiled graph's own time holds them). Matrix products stay cuBLAS calls
    # unless compiled with max-autotune, whose Triton GEMM templates land here.
    ('fused', re.compile(r'^triton_|cpp_fused|CompiledFxGraph|^Torch-Compiled Region|'
                         r'^CompiledFunction')),
)
OTHER = 'other'
GROUPS = tuple(name for name, _ in CATEGORIES) + (OTHER,)


def categorize(name: str) -> str:
    """The group of a kernel or operator named ``name``."""
    for category, pattern in CATEGORIES:
        if pattern.search(name):
            return category
    return OTHER


def self_times(prof: profile, device: torch.device) -> Dict[str, Tuple[float, int]]:
    """Name -> (self milliseconds, calls): CUDA kernels on a GPU, else CPU operators."""
    times: Dict[str, Tuple[float, int]] = {}
    for event in prof.key_averages():
        if device.type == 'cuda':
            if event.device_type != DeviceType.CUDA:
                continue
            micros = event.self_device_time_total
        else:
            if event.device_type != DeviceType.CPU:
                continue
            micros = event.self_cpu_time_total
        if micros > 0:
            times[event.key] = (micros / 1e3, event.count)
    return times


def profile_step(step: Callable[[], object], device: torch.device, top: int = 8) -> dict:
    """Run ``step`` once under the profiler; its time by group and its largest entries.

    Args:
        step: One benchmark step (already warmed up: compilation is not profiled).
        device: Synchronised before and after, so the step's kernels are inside.
        top: How many of the largest kernels/operators to list.

    Returns:
        ``source`` (what was summed), ``total_ms``, ``groups`` (group -> ms and
        share of the total) and ``top`` (name, group, ms, calls).
    """
    activities = [ProfilerActivity.CPU]
    if device.type == 'cuda':
        activities.append(ProfilerActivity.CUDA)
    synchronize(device)
    with profile(activities=activities) as prof:
        step()
        synchronize(device)
    entries = sorted((dict(name=name, group=categorize(name), ms=ms, calls=calls)
                      for name, (ms, calls) in self_times(prof, device).items()),
                     key=lambda entry: -entry['ms'])
    total = sum(entry['ms'] for entry in entries)
    groups = {group: 0.0 for group in GROUPS}
    for entry in entries:
        groups[entry['group']] += entry['ms']
    return dict(source='cuda kernels' if device.type == 'cuda' else 'cpu operators',
                total_ms=total,
                groups={g: dict(ms=ms, share=ms / total if total else 0.0)
                        for g, ms in groups.items()},
                top=entries[:top])
