"""Deformable cross-attention between token grids of different strides.

A thin wrapper over mmcv's :class:`~mmcv.ops.MultiScaleDeformableAttention`
(its CUDA kernel on GPU, ``multi_scale_deformable_attn_pytorch`` elsewhere)
plus the helpers that place reference points by pixel position, so grids of
unrelated strides (14 for ViT tokens, 8/16/32 for convolutional maps) are
aligned on the image rather than on their indices.
"""
from typing import List, Sequence, Tuple

import torch
import torch.nn as nn
from mmcv.ops import MultiScaleDeformableAttention

Shape = Tuple[int, int]


def grid_centers(shape: Shape, stride: int, device: torch.device) -> torch.Tensor:
    """Pixel ``(x, y)`` centres of the cells of an ``(h, w)`` grid, shape ``(h*w, 2)``."""
    h, w = shape
    ys = (torch.arange(h, device=device, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(w, device=device, dtype=torch.float32) + 0.5) * stride
    y, x = torch.meshgrid(ys, xs, indexing='ij')
    return torch.stack([x.flatten(), y.flatten()], dim=-1)


def reference_points(centers: torch.Tensor, value_shapes: Sequence[Shape],
                     value_strides: Sequence[int]) -> torch.Tensor:
    """Query pixel centres normalised per value level, shape ``(N, L, 2)``.

    Level ``l`` covers ``w_l * stride_l`` x ``h_l * stride_l`` pixels (the
    padded image seen by that level), so the same pixel gets a different
    normalised coordinate on each level when the extents differ, e.g. a
    ceil(100/14)=8-token ViT grid spans 112 px while a ceil(100/16)=7-cell map
    spans 112 px and a ceil(100/32)=4-cell map 128 px.
    """
    extents = torch.tensor([[w * s, h * s] for (h, w), s in zip(value_shapes, value_strides)],
                           dtype=torch.float32, device=centers.device)
    return centers[:, None, :] / extents[None]


def level_layout(shapes: Sequence[Shape], device: torch.device
                 ) -> Tuple[torch.Tensor, torch.Tensor]:
    """``spatial_shapes`` ``(L, 2)`` and ``level_start_index`` ``(L,)`` for MSDA."""
    spatial = torch.as_tensor([list(s) for s in shapes], dtype=torch.long, device=device)
    sizes = spatial.prod(1)
    start = torch.cat([sizes.new_zeros(1), sizes.cumsum(0)[:-1]])
    return spatial, start


class DeformableCrossAttention(nn.Module):
    """Multi-scale deformable cross-attention without the residual.

    mmcv's module adds its ``identity`` (the query) to the output; the
    ViT-Adapter injector scales the attention by a learned gamma before the
    residual, so the wrapper passes a zero identity and lets callers add.
    Sampling runs in float32 with autocast off: mmcv's CUDA kernel has no
    bfloat16 path and bilinear sampling weights lose precision in half types.

    Args:
        embed_dims: Query width (and value width before ``value_proj``).
        num_heads: Attention heads; must divide ``embed_dims`` and
            ``int(embed_dims * value_ratio)``.
        num_levels: Value levels.
        num_points: Sampling points per head and level.
        value_ratio: Width of the projected value relative to ``embed_dims``
            (upstream ``deform_ratio``).
    """

    def __init__(self, embed_dims: int, num_heads: int, num_levels: int, num_points: int = 4,
                 value_ratio: float = 1.0) -> None:
        super().__init__()
        value_dims = int(embed_dims * value_ratio)
        if embed_dims % num_heads or value_dims % num_heads or value_dims == 0:
            raise ValueError(
                f'deformable attention needs num_heads={num_heads} to divide embed_dims='
                f'{embed_dims} and the value width int({embed_dims} * {value_ratio})='
                f'{value_dims}; pick another num_heads or deform_ratio')
        self.attn = MultiScaleDeformableAttention(
            embed_dims=embed_dims, num_heads=num_heads, num_levels=num_levels,
            num_points=num_points, dropout=0.0, batch_first=True,
            value_proj_ratio=value_ratio)

    def init_weights(self) -> None:
        """mmcv's init: radial offset biases, uniform attention, xavier projections."""
        self.attn.init_weights()

    def forward(self, query: torch.Tensor, value: torch.Tensor, reference_points: torch.Tensor,
                spatial_shapes: torch.Tensor, level_start_index: torch.Tensor) -> torch.Tensor:
        """Attend from ``query`` ``(B, Nq, C)`` to ``value`` ``(B, Nv, C)``.

        ``reference_points`` is ``(B or 1, Nq, L, 2)`` in ``[0, 1]`` per level.
        """
        B = query.shape[0]
        ref = reference_points.float().expand(B, -1, -1, -1)
        with torch.autocast(device_type=query.device.type, enabled=False):
            return self.attn(query=query.float(), value=value.float(),
                             identity=query.new_zeros((), dtype=torch.float32),
                             reference_points=ref, spatial_shapes=spatial_shapes,
                             level_start_index=level_start_index)


def split_levels(tokens: torch.Tensor, shapes: Sequence[Shape]) -> List[torch.Tensor]:
    """Split ``(B, sum(h*w), C)`` tokens into NCHW maps of the given shapes."""
    B, _, C = tokens.shape
    parts = tokens.split([h * w for h, w in shapes], dim=1)
    return [p.transpose(1, 2).reshape(B, C, h, w) for p, (h, w) in zip(parts, shapes)]
