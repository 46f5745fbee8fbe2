"""Analytic FLOP counts of InternViT steps (a multiply-add counts as 2 FLOPs).

Per token and block the forward costs

* ``2·3C² + 2·C²`` for the qkv and output projections,
* ``2·2·C·F`` for the MLP (``F`` = feedforward_channels),
* ``2·2·N·C`` for ``q·kᵀ`` and ``attn·v`` over ``N`` tokens (cls included),

i.e. ``8C² + 4CF + 4NC``, which is ``24C² + 4NC`` for InternViT's ``F = 4C``.
A windowed block (``window_size``) computes ``q·kᵀ`` and ``attn·v`` only for
the query-key pairs of :func:`attention_pairs` instead of ``N²``.
Norms, softmax, GELU, layer scale and the patch embedding are left out: they
are O(N·C) or run once, under 0.5% of the total at these widths. A training
step is 3x the forward (backward = 2x forward) and 4x with activation
checkpointing (the forward runs twice).
"""
import math
from typing import Mapping, Optional, Sequence

from mmseg_internvit.models.backbones.intern_vit import num_tokens
from mmseg_internvit.models.layers import clamp_window

# Forward passes a step costs, relative to one forward.
STEP_MULTIPLIER = {'forward': 1, 'train': 3, 'train_cp': 4}


def block_flops_per_token(arch: Mapping, tokens: int) -> int:
    """Forward FLOPs of one block for one token.

    Args:
        arch: Resolved arch dict (``embed_dims``, ``feedforward_channels``).
        tokens: Sequence length N, cls token included.
    """
    C, F = arch['embed_dims'], arch['feedforward_channels']
    return 8 * C * C + 4 * C * F + 4 * tokens * C


def attention_pairs(height: int, width: int, window_size: Optional[int] = None,
                    patch_size: int = 14) -> int:
    """Query-key pairs one block's attention computes for one image.

    Global: ``N²`` (cls included). Windowed (:class:`WindowAttention`): the
    padded patch grid's queries against their window plus the cls token,
    and the cls query against every token; padding is computed (masked),
    so it counts.

    Args:
        height: Input height in pixels.
        width: Input width in pixels.
        window_size: Window side in tokens; None for global attention.
        patch_size: Patch side in pixels.
    """
    grid = (math.ceil(height / patch_size), math.ceil(width / patch_size))
    tokens = 1 + grid[0] * grid[1]
    if window_size is None or clamp_window(window_size, grid) == grid:
        return tokens * tokens
    wh, ww = clamp_window(window_size, grid)
    padded = math.ceil(grid[0] / wh) * wh * math.ceil(grid[1] / ww) * ww
    return padded * (1 + wh * ww) + tokens


def forward_flops(arch: Mapping, height: int, width: int, batch: int,
                  num_layers: int = None, window_size: Optional[int] = None,
                  global_attn_indexes: Sequence[int] = ()) -> int:
    """Forward FLOPs of the whole backbone on a batch.

    Args:
        arch: Resolved arch dict.
        height: Input height in pixels (padded up to the patch size).
        width: Input width in pixels.
        batch: Images per step.
        num_layers: Blocks run (default: all of ``arch``).
        window_size: Window attention in every block not in
            ``global_attn_indexes`` (None: all global).
        global_attn_indexes: 0-based blocks that stay global.
    """
    tokens = num_tokens(height, width)
    layers = arch['num_layers'] if num_layers is None else num_layers
    total = batch * tokens * layers * block_flops_per_token(arch, tokens)
    if window_size is not None:
        windowed = sum(1 for i in range(layers) if i not in global_attn_indexes)
        saved = attention_pairs(height, width) - attention_pairs(height, width, window_size)
        total -= batch * windowed * 4 * arch['embed_dims'] * saved
    return total


def step_flops(mode: str, arch: Mapping, height: int, width: int, batch: int,
               with_cp: bool = False, num_classes: int = 0, window_size: Optional[int] = None,
               global_attn_indexes: Sequence[int] = ()) -> int:
    """FLOPs of one benchmark step.

    Args:
        mode: ``'forward'``, ``'train'`` or ``'probe'``.
        arch: Resolved arch dict.
        height: Input height in pixels.
        width: Input width in pixels.
        batch: Images per step.
        with_cp: Activation checkpointing (``'train'`` only).
        num_classes: Classes of the probe head (``'probe'`` only).
        window_size: See :func:`forward_flops`.
        global_attn_indexes: See :func:`forward_flops`.

    ``'probe'`` is one frozen forward plus the 1x1-conv head's forward and
    weight gradient (``2·2·C·K`` per output pixel; no input gradient is needed).
    """
    fwd = forward_flops(arch, height, width, batch, window_size=window_size,
                        global_attn_indexes=global_attn_indexes)
    if mode == 'forward':
        return fwd
    if mode == 'train':
        return fwd * STEP_MULTIPLIER['train_cp' if with_cp else 'train']
    if mode == 'probe':
        pixels = batch * (num_tokens(height, width) - 1)
        return fwd + 2 * 2 * arch['embed_dims'] * num_classes * pixels
    raise ValueError(f"mode must be 'forward', 'train' or 'probe', got {mode!r}")


def gemm_flops(rows: int, inner: int, cols: int) -> int:
    """FLOPs of a ``(rows x inner) @ (inner x cols)`` matrix product.

    Args:
        rows: Rows of the left operand.
        inner: Shared dimension.
        cols: Columns of the right operand.
    """
    return 2 * rows * inner * cols
