"""The timed steps: backbone forward, full-tuning step, linear-probe step, GEMM."""
from typing import Callable, Optional, Sequence, Union

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmseg_internvit.dtypes import to_torch_dtype
from mmseg_internvit.models.backbones.intern_vit import InternViT
from mmseg_internvit.models.layers import Attention, WindowAttention

MODES = ('forward', 'train', 'probe')


def build_backbone(arch: Union[str, dict], device: torch.device, dtype: str = 'float32',
                   attn_impl: str = 'sdpa', frozen: bool = False,
                   with_cp: bool = False, window_size: Optional[int] = None,
                   global_attn_indexes: Sequence[int] = ()) -> InternViT:
    """Build a randomly initialised InternViT directly on ``device``.

    Args:
        arch: Preset name or arch dict.
        device: Where parameters are allocated (no host copy for CUDA).
        dtype: Parameter/compute dtype name.
        attn_impl: ``'sdpa'`` or ``'naive'``; switch per step with :func:`with_attention`.
        frozen: Build it frozen (linear probe).
        with_cp: Activation checkpointing per block.
        window_size: Window attention outside ``global_attn_indexes``; switch
            per step with :func:`with_attention`.
        global_attn_indexes: Blocks that stay global.
    """
    with torch.device(device):
        model = InternViT(arch=arch, out_indices=[-1], frozen=frozen, with_cp=with_cp,
                          dtype=dtype, attn_impl=attn_impl, window_size=window_size,
                          global_attn_indexes=global_attn_indexes)
    model.init_weights()
    return model


# A window at least this large covers any grid: the block attends globally.
WHOLE_GRID = 2**31


def with_attention(model: nn.Module, attn_impl: str, window_size: Optional[int],
                   step: Callable[[], None]) -> Callable[[], None]:
    """Wrap ``step`` so it runs with every attention layer set to ``attn_impl``
    and every windowed layer to ``window_size`` (None: global attention).

    Same weights, same process: wrapped steps differ in attention only and can
    be timed alternately ('naive' vs 'sdpa', or windows vs global, where a
    window covering the grid is exactly global attention). Setting attributes
    on precomputed lists costs microseconds, nothing next to a step.
    """
    layers = [m for m in model.modules() if isinstance(m, Attention)]
    windowed = [m for m in layers if isinstance(m, WindowAttention)]

    def step_with_attention() -> None:
        for layer in layers:
            layer.attn_impl = attn_impl
        for layer in windowed:
            layer.window_size = WHOLE_GRID if window_size is None else window_size
        step()
    return step_with_attention


def make_step(mode: str, model: InternViT, batch: int, height: int, width: int,
              num_classes: int = 150) -> Callable[[], None]:
    """Return a zero-argument function running one step of ``mode``.

    Inputs are made once here, so the step times the model alone. Gradients
    are freed at the end of each step, so a step's peak memory includes its
    own gradients and none are left over from the previous step.

    Args:
        mode: ``'forward'`` (no_grad inference), ``'train'`` (forward +
            backward through the whole backbone) or ``'probe'`` (frozen
            backbone, BN + 1x1 conv head, cross-entropy at image resolution,
            backward through the head).
        model: The backbone (built with ``frozen=True`` for ``'probe'``).
        batch: Images per step.
        height: Input height in pixels.
        width: Input width in pixels.
        num_classes: Classes of the probe head.
    """
    device = next(model.parameters()).device
    images = torch.randn(batch, 3, height, width, device=device)
    if mode == 'forward':
        model.eval()

        def forward_step() -> None:
            with torch.no_grad():
                model(images)
        return forward_step
    if mode == 'train':
        model.train()

        def train_step() -> None:
            outs = model(images)
            sum(out.mean() for out in outs).backward()
            model.zero_grad(set_to_none=True)
        return train_step
    if mode == 'probe':
        if not model.frozen:
            raise ValueError('probe mode needs a backbone built with frozen=True')
        # The head runs in float32 like the project's LinearProbeHead.
        head = nn.Sequential(nn.BatchNorm2d(model.embed_dims),
                             nn.Conv2d(model.embed_dims, num_classes, 1)).to(device).train()
        labels = torch.randint(0, num_classes, (batch, height, width), device=device)

        def probe_step() -> None:
            feats = model(images)[-1]
            logits = F.interpolate(head(feats), size=(height, width), mode='bilinear',
                                   align_corners=False)
            F.cross_entropy(logits, labels).backward()
            head.zero_grad(set_to_none=True)
        return probe_step
    raise ValueError(f'mode must be one of {MODES}, got {mode!r}')


def make_gemm(rows: int, inner: int, cols: int, dtype: str, device: torch.device,
              calls: int = 1) -> Callable[[], None]:
    """Return a step computing ``(rows x inner) @ (inner x cols)`` ``calls`` times.

    The reference rate for the backbone: a same-dtype, same-device product of
    the shape of its fc1 (``B·N x C`` by ``C x 4C``), output freshly allocated
    as a Linear's is.

    Args:
        rows: Rows of the left operand.
        inner: Shared dimension.
        cols: Columns of the right operand.
        dtype: dtype name.
        device: Where the operands live.
        calls: Products per step (back to back, one timer read).
    """
    a = torch.randn(rows, inner, device=device, dtype=to_torch_dtype(dtype))
    b = torch.randn(inner, cols, device=device, dtype=to_torch_dtype(dtype))

    def gemm_step() -> None:
        for _ in range(calls):
            torch.mm(a, b)
    return gemm_step
