"""ViT-Adapter interaction layers: Injector, Extractor (with ConvFFN)."""
from typing import Sequence, Tuple

import torch
import torch.nn as nn
import torch.utils.checkpoint as cp
from timm.layers import DropPath

from .deform_attn import DeformableCrossAttention, Shape

# (reference_points, spatial_shapes, level_start_index) of one attention direction.
DeformInputs = Tuple[torch.Tensor, torch.Tensor, torch.Tensor]


class ConvFFN(nn.Module):
    """Linear -> per-level 3x3 depthwise conv -> GELU -> linear over multi-level tokens.

    Args:
        dim: Token width.
        hidden_dims: Hidden width.
        drop: Dropout after the activation and the output projection.
    """

    def __init__(self, dim: int, hidden_dims: int, drop: float = 0.0) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dims)
        self.dwconv = nn.Conv2d(hidden_dims, hidden_dims, 3, padding=1, groups=hidden_dims)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dims, dim)
        self.drop = nn.Dropout(drop)

    def forward(self, x: torch.Tensor, shapes: Sequence[Shape]) -> torch.Tensor:
        x = self.fc1(x)
        B, _, C = x.shape
        # The depthwise conv runs per level: the levels are separate grids
        # concatenated along the token axis, so neighbours never cross levels.
        parts = []
        for part, (h, w) in zip(x.split([h * w for h, w in shapes], dim=1), shapes):
            part = part.transpose(1, 2).reshape(B, C, h, w)
            parts.append(self.dwconv(part).flatten(2).transpose(1, 2))
        x = self.drop(self.act(torch.cat(parts, dim=1)))
        return self.drop(self.fc2(x))


class Injector(nn.Module):
    """ViT tokens (query) gather spatial priors from the SPM levels (value).

    ``out = query + gamma * attn(norm(query), norm(feat))``; gamma starts at 0
    so an untrained adapter leaves the pretrained ViT's features unchanged.

    Args:
        dim: Token width.
        num_heads: Deformable attention heads.
        n_points: Sampling points per head and level.
        n_levels: SPM levels attended to.
        deform_ratio: Value width ratio of the deformable attention.
        init_values: Initial gamma.
        with_cp: Activation checkpointing while training.
    """

    def __init__(self, dim: int, num_heads: int, n_points: int = 4, n_levels: int = 3,
                 deform_ratio: float = 1.0, init_values: float = 0.0,
                 with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DeformableCrossAttention(dim, num_heads, n_levels, n_points, deform_ratio)
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def _forward(self, query: torch.Tensor, feat: torch.Tensor, ref: torch.Tensor,
                 shapes: torch.Tensor, start: torch.Tensor) -> torch.Tensor:
        q = query.float()
        attn = self.attn(self.query_norm(q), self.feat_norm(feat.float()), ref, shapes, start)
        # Back to the ViT's dtype: the result feeds its blocks.
        return (q + self.gamma * attn).to(query.dtype)

    def forward(self, query: torch.Tensor, feat: torch.Tensor,
                deform_inputs: DeformInputs) -> torch.Tensor:
        if self.with_cp and self.training and query.requires_grad | feat.requires_grad:
            return cp.checkpoint(self._forward, query, feat, *deform_inputs, use_reentrant=False)
        return self._forward(query, feat, *deform_inputs)


class Extractor(nn.Module):
    """SPM tokens (query) read the ViT tokens (value), then a ConvFFN.

    Args:
        dim: Token width.
        num_heads: Deformable attention heads.
        n_points: Sampling points per head.
        deform_ratio: Value width ratio of the deformable attention.
        with_cffn: Add the ConvFFN.
        cffn_ratio: ConvFFN hidden width relative to ``dim``.
        drop: ConvFFN dropout.
        drop_path: Stochastic depth of the ConvFFN branch.
        with_cp: Activation checkpointing while training.
    """

    def __init__(self, dim: int, num_heads: int, n_points: int = 4, deform_ratio: float = 1.0,
                 with_cffn: bool = True, cffn_ratio: float = 0.25, drop: float = 0.0,
                 drop_path: float = 0.0, with_cp: bool = False) -> None:
        super().__init__()
        self.with_cp = with_cp
        self.query_norm = nn.LayerNorm(dim, eps=1e-6)
        self.feat_norm = nn.LayerNorm(dim, eps=1e-6)
        self.attn = DeformableCrossAttention(dim, num_heads, 1, n_points, deform_ratio)
        self.ffn = None
        if with_cffn:
            self.ffn = ConvFFN(dim, int(dim * cffn_ratio), drop)
            self.ffn_norm = nn.LayerNorm(dim, eps=1e-6)
            self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def _forward(self, query: torch.Tensor, feat: torch.Tensor, ref: torch.Tensor,
                 shapes: torch.Tensor, start: torch.Tensor,
                 query_shapes: Sequence[Shape]) -> torch.Tensor:
        query = query + self.attn(self.query_norm(query), self.feat_norm(feat.float()),
                                  ref, shapes, start)
        if self.ffn is not None:
            query = query + self.drop_path(self.ffn(self.ffn_norm(query), query_shapes))
        return query

    def forward(self, query: torch.Tensor, feat: torch.Tensor, deform_inputs: DeformInputs,
                query_shapes: Sequence[Shape]) -> torch.Tensor:
        if self.with_cp and self.training and query.requires_grad | feat.requires_grad:
            return cp.checkpoint(self._forward, query, feat, *deform_inputs, query_shapes,
                                 use_reentrant=False)
        return self._forward(query, feat, *deform_inputs, query_shapes)
