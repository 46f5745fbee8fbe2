"""Run forward / train / probe benchmarks over sizes and variants: attention kernels,
windows, our compiled blocks and peer implementations."""
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn

from mmseg_internvit.models.backbones.arch_zoo import resolve_arch
from mmseg_internvit.models.backbones.intern_vit import num_tokens
from .flops import gemm_flops, step_flops
from .measure import measure_peak_memory, synchronize, time_interleaved
from .profile import profile_step
from .peers import TOLERANCE, build_peer, compiled_twin, last_output, max_difference
from .steps import build_backbone, make_gemm, make_step, with_attention

REFERENCE_ATTN = 'naive'
FUSED_ATTN = 'sdpa'
GEMM = 'gemm'
EAGER = 'eager'
COMPILED = 'compiled'


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
        compile: Also time our backbone with compiled blocks (same weights).
        peers: Also time these peers (:data:`~.peers.PEERS`) on the same weights.
        peer_file: The upstream ``intern_vit_6b.py`` for the ``'upstream'`` peer.
        profile: Also profile one more step of each variant (see
            :func:`~.profile.profile_step`), after the timings.
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
    compile: bool = False
    peers: Sequence[str] = field(default_factory=tuple)
    peer_file: Optional[str] = None
    profile: bool = False

    @property
    def attn_impls(self) -> List[str]:
        return [REFERENCE_ATTN, FUSED_ATTN] if self.attn == 'both' else [self.attn]

    @property
    def implementations(self) -> bool:
        """Whether this run compares implementations (eager, compiled, peers)."""
        return self.compile or bool(self.peers)

    def global_attn_indexes(self, num_layers: int) -> List[int]:
        """The global blocks of the windowed variant."""
        return [(i + 1) * num_layers // self.global_blocks - 1 for i in range(self.global_blocks)]

    @property
    def variants(self) -> Dict[str, Tuple[str, Optional[int]]]:
        """Name -> (attention kernel, window size or None) of our eager model, the
        reference first."""
        window = self.window_size if self.windows == 'on' else None
        if self.implementations:
            return {EAGER: (self.attn, window)}
        if self.windows == 'both':
            return {'global': (self.attn, None),
                    f'window{self.window_size}': (self.attn, self.window_size)}
        return {impl: (impl, window) for impl in self.attn_impls}


class Variant(NamedTuple):
    """One timed implementation.

    Attributes:
        name: Its name in tables and JSON.
        model: What the step runs (ours, the compiled twin or a peer).
        attn_impl: Our attention kernel (None for peers).
        window_size: Our window (None: global attention).
        prepare: Called with ``(height, width)`` before each size.
    """
    name: str
    model: nn.Module
    attn_impl: Optional[str]
    window_size: Optional[int]
    prepare: Callable[[int, int], None]


def _no_preparation(height: int, width: int) -> None:
    pass


def build_variants(cfg: BenchmarkConfig, model: nn.Module) -> List[Variant]:
    """Our eager model's variants, then the compiled twin and the peers.

    Args:
        cfg: The benchmark.
        model: Our eager backbone.
    """
    variants = [Variant(name, model, impl, window, _no_preparation)
                for name, (impl, window) in cfg.variants.items()]
    eager = variants[0]
    if cfg.compile:
        variants.append(eager._replace(name=COMPILED, model=compiled_twin(model)))
    for name in cfg.peers:
        peer = build_peer(name, model, with_cp=cfg.with_cp, upstream_file=cfg.peer_file)
        variants.append(Variant(name, peer, None, None,
                                getattr(peer, 'prepare', _no_preparation)))
    return variants


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
    """Run every (size, variant) of ``cfg`` on one set of weights.

    Per size, each variant's first step is timed on its own (for the compiled
    variant it includes compilation), the compiled twin and the peers are
    checked against our eager output, then the reference GEMM and every
    variant's step are timed round-robin (see :func:`time_interleaved`), and
    each step's peak memory is measured in one extra, untimed step so the
    meters cannot perturb the timings.

    Returns:
        ``(runs, comparisons)``: one record per size and variant, and per size
        one comparison of each variant with the first (the reference).

    Raises:
        ValueError: a compiled twin or peer disagrees with our eager backbone
            beyond :data:`~.peers.TOLERANCE` (it would time another model).
    """
    device = torch.device(cfg.device)
    arch = resolve_arch(cfg.arch)
    windowed = cfg.windows != 'off'
    global_blocks = cfg.global_attn_indexes(arch['num_layers']) if windowed else []
    model = build_backbone(cfg.arch, device, cfg.dtype, cfg.attn_impls[0],
                           frozen=cfg.mode == 'probe', with_cp=cfg.with_cp,
                           window_size=cfg.window_size if windowed else None,
                           global_attn_indexes=global_blocks)
    variants = build_variants(cfg, model)
    runs, comparisons = [], []
    for height, width in cfg.sizes:
        tokens = num_tokens(height, width)
        for variant in variants:
            variant.prepare(height, width)
        steps = {v.name: make_step(cfg.mode, v.model, cfg.batch, height, width, cfg.num_classes)
                 for v in variants}
        flops = {v.name: step_flops(cfg.mode, arch, height, width, cfg.batch,
                                    with_cp=cfg.with_cp, num_classes=cfg.num_classes,
                                    window_size=v.window_size,
                                    global_attn_indexes=global_blocks)
                 for v in variants}
        # The backbone's fc1 shape: B·N x C by C x 4C, same dtype and device.
        gemm_shape = (cfg.batch * tokens, arch['embed_dims'], 4 * arch['embed_dims'])
        calls = gemm_calls(device, max(flops.values()), gemm_flops(*gemm_shape))
        fns = {GEMM: make_gemm(*gemm_shape, cfg.dtype, device, calls)}
        fns.update({v.name: with_attention(model, v.attn_impl, v.window_size, steps[v.name])
                    if v.model is model else steps[v.name] for v in variants})
        first_step = {v.name: time_first_step(fns[v.name], device) for v in variants}
        agreement = check_agreement(cfg, variants, height, width, device)
        stats = time_interleaved(fns, device, cfg.warmup, cfg.repeats)
        gemm_stats = stats.pop(GEMM)
        gemm = dict(shape=list(gemm_shape), calls_per_repeat=calls,
                    time_s=gemm_stats.to_dict(), flops=calls * gemm_flops(*gemm_shape))
        gemm['flops_per_s'] = gemm['flops'] / gemm_stats.median
        by_variant = {}
        for variant in variants:
            name, variant_stats = variant.name, stats[variant.name]
            memory = measure_peak_memory(fns[name], device)
            achieved = flops[name] / variant_stats.median
            window = variant.window_size
            record = dict(
                mode=cfg.mode, arch=arch,
                arch_name=cfg.arch if isinstance(cfg.arch, str) else 'custom',
                variant=name, attn_impl=variant.attn_impl, window_size=window,
                global_attn_indexes=global_blocks if window else None,
                height=height, width=width, batch=cfg.batch,
                dtype=cfg.dtype, device=str(device), with_cp=cfg.with_cp, tokens=tokens,
                time_s=variant_stats.to_dict(), images_per_s=cfg.batch / variant_stats.median,
                tokens_per_s=cfg.batch * tokens / variant_stats.median,
                peak_memory=memory.to_dict(), flops=flops[name], flops_per_s=achieved,
                gemm=gemm, gemm_ratio=achieved / gemm['flops_per_s'],
                first_step_s=first_step[name])
            if name == COMPILED:
                # The first step compiled (forward, and backward when training).
                record['compile_s'] = max(first_step[name] - variant_stats.median, 0.0)
            if name in agreement:
                record['agreement'] = agreement[name]
            if cfg.profile:
                record['profile'] = profile_step(fns[name], device)
            by_variant[name] = record
            runs.append(record)
        reference, *others = by_variant.values()
        comparisons.extend(compare(reference, other) for other in others)
        del fns, steps
    return runs, comparisons


def time_first_step(step: Callable[[], None], device: torch.device) -> float:
    """Seconds of one step run on its own (compilation, allocator and kernel warm-up)."""
    synchronize(device)
    start = time.perf_counter()
    step()
    synchronize(device)
    return time.perf_counter() - start


def check_agreement(cfg: BenchmarkConfig, variants: List[Variant], height: int, width: int,
                    device: torch.device) -> Dict[str, dict]:
    """Compare the last output of every non-eager variant with our eager backbone.

    Run in the step's own mode (no_grad inference for ``forward``, autograd
    recording for ``train``), so no extra graphs are compiled for the check.

    Returns:
        Variant name -> ``max_abs_diff``, ``max_abs_reference``,
        ``relative_diff`` and the ``tolerance`` it was held to.
    """
    others = [v for v in variants if v.model is not variants[0].model]
    if not others:
        return {}
    torch.manual_seed(1)
    images = torch.randn(cfg.batch, 3, height, width, device=device)
    tolerance = TOLERANCE[cfg.dtype]
    grad = cfg.mode == 'train'
    expected = last_output(variants[0].model, images, grad)  # once for all variants
    result = {}
    for variant in others:
        diff, scale = max_difference(expected, last_output(variant.model, images, grad))
        relative = diff / scale if scale > 0 else diff
        result[variant.name] = dict(max_abs_diff=diff, max_abs_reference=scale,
                                    relative_diff=relative, tolerance=tolerance,
                                    reference=variants[0].name)
        if not relative <= tolerance:
            raise ValueError(
                f'{variant.name} disagrees with our eager backbone on the same weights at '
                f'{height}x{width} ({cfg.dtype}): max |diff| {diff:.3g} against max |output| '
                f'{scale:.3g} (relative {relative:.3g} > {tolerance:g}); not timing it.')
    return result


def compare(reference: dict, variant: dict) -> dict:
    """Variant-vs-reference ratios for one size.

    ``time_ratio`` and ``peak_memory_ratio`` are variant / reference (lower is
    better); ``speedup`` is reference / variant time. The reference is the
    naive kernel (against sdpa), global attention (against windows, with
    ``windows='both'``) or our eager backbone (against compiled blocks and
    peers).

    Args:
        reference: Run record of the reference (naive kernel, global, or eager).
        variant: Run record of the variant (sdpa kernel, windows, compiled or a
            peer), same size.
    """
    t_ref, t_var = reference['time_s']['median'], variant['time_s']['median']
    m_ref = reference['peak_memory']['peak_delta_bytes']
    m_var = variant['peak_memory']['peak_delta_bytes']
    return dict(height=variant['height'], width=variant['width'], batch=variant['batch'],
                mode=variant['mode'], reference=reference['variant'], variant=variant['variant'],
                reference_time_s=t_ref, variant_time_s=t_var, time_ratio=t_var / t_ref,
                speedup=t_ref / t_var, reference_peak_memory_bytes=m_ref,
                variant_peak_memory_bytes=m_var,
                peak_memory_ratio=m_var / m_ref if m_ref > 0 else None)
