"""Run forward / train / probe benchmarks over sizes and attention variants."""
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch

from mmseg_internvit.models.backbones.intern_vit import num_tokens, resolve_arch
from .flops import gemm_flops, step_flops
from .measure import measure_peak_memory, time_interleaved
from .steps import build_backbone, make_gemm, make_step, with_attention

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
        windows: ``'off'`` (global attention), ``'on'`` (window attention
            with ``global_blocks`` global blocks) or ``'both'`` (global first,
            then windows, same weights): the detection-shaped comparison.
        window_size: Window side in tokens.
        global_blocks: Blocks that stay global, evenly spaced (the last of
            each ``1 / global_blocks`` of the depth, as ViTDet).
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
    windows: str = 'off'
    window_size: int = 14
    global_blocks: int = 4
    with_cp: bool = False
    warmup: int = 2
    repeats: int = 5
    num_classes: int = 150

    @property
    def attn_impls(self) -> List[str]:
        return [REFERENCE_ATTN, FUSED_ATTN] if self.attn == 'both' else [self.attn]

    def global_attn_indexes(self, num_layers: int) -> List[int]:
        """The global blocks of the windowed variant."""
        return [(i + 1) * num_layers // self.global_blocks - 1 for i in range(self.global_blocks)]

    @property
    def variants(self) -> Dict[str, Tuple[str, Optional[int]]]:
        """Name -> (attention kernel, window size or None), the reference first."""
        if self.windows == 'both':
            return {'global': (self.attn, None),
                    f'window{self.window_size}': (self.attn, self.window_size)}
        window = self.window_size if self.windows == 'on' else None
        return {impl: (impl, window) for impl in self.attn_impls}


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
    windowed = cfg.windows != 'off'
    global_blocks = cfg.global_attn_indexes(arch['num_layers']) if windowed else []
    model = build_backbone(cfg.arch, device, cfg.dtype, cfg.attn_impls[0],
                           frozen=cfg.mode == 'probe', with_cp=cfg.with_cp,
                           window_size=cfg.window_size if windowed else None,
                           global_attn_indexes=global_blocks)
    variants = cfg.variants
    runs, comparisons = [], []
    for height, width in cfg.sizes:
        tokens = num_tokens(height, width)
        step = make_step(cfg.mode, model, cfg.batch, height, width, cfg.num_classes)
        flops = {name: step_flops(cfg.mode, arch, height, width, cfg.batch,
                                  with_cp=cfg.with_cp, num_classes=cfg.num_classes,
                                  window_size=window, global_attn_indexes=global_blocks)
                 for name, (_, window) in variants.items()}
        # The backbone's fc1 shape: B·N x C by C x 4C, same dtype and device.
        gemm_shape = (cfg.batch * tokens, arch['embed_dims'], 4 * arch['embed_dims'])
        calls = gemm_calls(device, max(flops.values()), gemm_flops(*gemm_shape))
        fns = {GEMM: make_gemm(*gemm_shape, cfg.dtype, device, calls)}
        fns.update({name: with_attention(model, impl, window, step)
                    for name, (impl, window) in variants.items()})
        stats = time_interleaved(fns, device, cfg.warmup, cfg.repeats)
        gemm_stats = stats.pop(GEMM)
        gemm = dict(shape=list(gemm_shape), calls_per_repeat=calls,
                    time_s=gemm_stats.to_dict(), flops=calls * gemm_flops(*gemm_shape))
        gemm['flops_per_s'] = gemm['flops'] / gemm_stats.median
        by_variant = {}
        for name, variant_stats in stats.items():
            memory = measure_peak_memory(fns[name], device)
            achieved = flops[name] / variant_stats.median
            impl, window = variants[name]
            by_variant[name] = dict(
                mode=cfg.mode, arch=arch,
                arch_name=cfg.arch if isinstance(cfg.arch, str) else 'custom',
                variant=name, attn_impl=impl, window_size=window,
                global_attn_indexes=global_blocks if window else None,
                height=height, width=width, batch=cfg.batch,
                dtype=cfg.dtype, device=str(device), with_cp=cfg.with_cp, tokens=tokens,
                time_s=variant_stats.to_dict(), images_per_s=cfg.batch / variant_stats.median,
                tokens_per_s=cfg.batch * tokens / variant_stats.median,
                peak_memory=memory.to_dict(), flops=flops[name], flops_per_s=achieved,
                gemm=gemm, gemm_ratio=achieved / gemm['flops_per_s'])
            runs.append(by_variant[name])
        if len(by_variant) == 2:
            comparisons.append(compare(*by_variant.values()))
        del fns, step
    return runs, comparisons


def compare(reference: dict, fused: dict) -> dict:
    """Variant-vs-reference ratios for one size.

    ``time_ratio`` and ``peak_memory_ratio`` are fused / reference (lower is
    better); ``speedup`` is reference / fused time. The keys keep the names
    of the kernel comparison; with ``windows='both'`` the reference is global
    attention and "fused" the windowed variant.

    Args:
        reference: Run record of the reference (naive kernel, or global).
        fused: Run record of the variant (sdpa kernel, or windows), same size.
    """
    t_ref, t_fused = reference['time_s']['median'], fused['time_s']['median']
    m_ref = reference['peak_memory']['peak_delta_bytes']
    m_fused = fused['peak_memory']['peak_delta_bytes']
    return dict(height=fused['height'], width=fused['width'], batch=fused['batch'],
                mode=fused['mode'], reference=reference['variant'], fused=fused['variant'],
                reference_time_s=t_ref, fused_time_s=t_fused, time_ratio=t_fused / t_ref,
                speedup=t_ref / t_fused, reference_peak_memory_bytes=m_ref,
                fused_peak_memory_bytes=m_fused,
                peak_memory_ratio=m_fused / m_ref if m_ref > 0 else None)
