"""Run forward / train / probe benchmarks over sizes and attention kernels."""
from dataclasses import dataclass
from typing import List, Sequence, Tuple, Union

import torch

from mmseg_internvit.models.backbones.intern_vit import num_tokens, resolve_arch
from .flops import gemm_flops, step_flops
from .measure import measure_peak_memory, time_interleaved
from .steps import build_backbone, make_gemm, make_step, with_attn_impl

REFERENCE_ATTN = 'naive'
FUSED_ATTN = 'sdpa'
GEMM = 'gemm'


@dataclass
class BenchmarkConfig:
    """What to benchmark.

    Args:
        mode: ``'forward'``, ``'train'`` or ``'probe'``.
        arch: Preset name or arch dict.
        sizes: ``(height, width)`` inputs, run in order on one model.
        batch: Images per step.
        dtype: Parameter/compute dtype name.
        device: ``'cpu'`` or ``'cuda'`` (or ``'cuda:N'``).
        attn: ``'sdpa'``, ``'naive'`` or ``'both'`` (naive first, then sdpa).
        with_cp: Activation checkpointing (train mode).
        warmup: Untimed rounds (GEMM and every kernel once each) per size.
        repeats: Timed rounds.
        num_classes: Probe head classes.
    """

    mode: str
    arch: Union[str, dict]
    sizes: Sequence[Tuple[int, int]]
    batch: int = 1
    dtype: str = 'float32'
    device: str = 'cpu'
    attn: str = 'sdpa'
    with_cp: bool = False
    warmup: int = 2
    repeats: int = 5
    num_classes: int = 150

    @property
    def attn_impls(self) -> List[str]:
        return [REFERENCE_ATTN, FUSED_ATTN] if self.attn == 'both' else [self.attn]


def gemm_calls(device: torch.device, flops: int, one_gemm_flops: int) -> int:
    """GEMMs per timed reference repeat.

    On CUDA one fc1-shaped product lasts well under a millisecond, where launch
    and synchronisation overhead and the GPU's clock state skew a single-call
    timing (seen on an H100: one 6B fc1 GEMM per repeat read 233 TFLOP/s
    between train steps and 363 between forward steps). There the reference
    runs as many products as the step (``flops``) has FLOPs, back to back, so
    both are timed over the same span. On CPU one product already lasts
    milliseconds or more: one call.

    Args:
        device: Where the step runs.
        flops: FLOPs of one step.
        one_gemm_flops: FLOPs of one reference product.
    """
    if device.type != 'cuda':
        return 1
    return max(1, min(round(flops / one_gemm_flops), 10_000))


def run_benchmark(cfg: BenchmarkConfig) -> Tuple[List[dict], List[dict]]:
    """Run every (size, attention kernel) of ``cfg`` on one model.

    Per size, the reference GEMM and each kernel's step are timed round-robin
    (see :func:`time_interleaved`), then each step's peak memory is measured
    in one extra, untimed step so the meters cannot perturb the timings.

    Returns:
        ``(runs, comparisons)``: one record per size and kernel, and with
        ``attn='both'`` one naive-vs-sdpa comparison per size.
    """
    device = torch.device(cfg.device)
    arch = resolve_arch(cfg.arch)
    model = build_backbone(cfg.arch, device, cfg.dtype, cfg.attn_impls[0],
                           frozen=cfg.mode == 'probe', with_cp=cfg.with_cp)
    runs, comparisons = [], []
    for height, width in cfg.sizes:
        tokens = num_tokens(height, width)
        step = make_step(cfg.mode, model, cfg.batch, height, width, cfg.num_classes)
        flops = step_flops(cfg.mode, arch, height, width, cfg.batch,
                           with_cp=cfg.with_cp, num_classes=cfg.num_classes)
        # The backbone's fc1 shape: B·N x C by C x 4C, same dtype and device.
        gemm_shape = (cfg.batch * tokens, arch['embed_dims'], 4 * arch['embed_dims'])
        calls = gemm_calls(device, flops, gemm_flops(*gemm_shape))
        fns = {GEMM: make_gemm(*gemm_shape, cfg.dtype, device, calls)}
        fns.update({impl: with_attn_impl(model, impl, step) for impl in cfg.attn_impls})
        stats = time_interleaved(fns, device, cfg.warmup, cfg.repeats)
        gemm_stats = stats.pop(GEMM)
        gemm = dict(shape=list(gemm_shape), calls_per_repeat=calls,
                    time_s=gemm_stats.to_dict(), flops=calls * gemm_flops(*gemm_shape))
        gemm['flops_per_s'] = gemm['flops'] / gemm_stats.median
        by_impl = {}
        for impl, impl_stats in stats.items():
            memory = measure_peak_memory(fns[impl], device)
            achieved = flops / impl_stats.median
            by_impl[impl] = dict(
                mode=cfg.mode, arch=arch,
                arch_name=cfg.arch if isinstance(cfg.arch, str) else 'custom',
                attn_impl=impl, height=height, width=width, batch=cfg.batch,
                dtype=cfg.dtype, device=str(device), with_cp=cfg.with_cp, tokens=tokens,
                time_s=impl_stats.to_dict(), images_per_s=cfg.batch / impl_stats.median,
                tokens_per_s=cfg.batch * tokens / impl_stats.median,
                peak_memory=memory.to_dict(), flops=flops, flops_per_s=achieved,
                gemm=gemm, gemm_ratio=achieved / gemm['flops_per_s'])
            runs.append(by_impl[impl])
        if len(by_impl) == 2:
            comparisons.append(compare(by_impl[REFERENCE_ATTN], by_impl[FUSED_ATTN]))
        del fns, step
    return runs, comparisons


def compare(reference: dict, fused: dict) -> dict:
    """Fused-vs-reference ratios for one size.

    ``time_ratio`` and ``peak_memory_ratio`` are fused / reference (lower is
    better); ``speedup`` is reference / fused time.

    Args:
        reference: Run record of the naive kernel.
        fused: Run record of the sdpa kernel, same size.
    """
    t_ref, t_fused = reference['time_s']['median'], fused['time_s']['median']
    m_ref = reference['peak_memory']['peak_delta_bytes']
    m_fused = fused['peak_memory']['peak_delta_bytes']
    return dict(height=fused['height'], width=fused['width'], batch=fused['batch'],
                mode=fused['mode'], reference=reference['attn_impl'], fused=fused['attn_impl'],
                reference_time_s=t_ref, fused_time_s=t_fused, time_ratio=t_fused / t_ref,
                speedup=t_ref / t_fused, reference_peak_memory_bytes=m_ref,
                fused_peak_memory_bytes=m_fused,
                peak_memory_ratio=m_fused / m_ref if m_ref > 0 else None)
