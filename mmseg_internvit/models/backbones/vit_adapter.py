"""InternViT-Adapter: InternViT + spatial prior module + deformable interactions."""
import math
from functools import partial
from typing import Callable, List, Optional, Sequence, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmcv.cnn import build_norm_layer
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d, trunc_normal_

from mmseg_internvit.registry import MODELS
from ..layers.deform_attn import (DeformableCrossAttention, Shape, grid_centers,
                                  level_layout, reference_points, split_levels)
from ..layers.interaction import DeformInputs, Extractor, Injector
from ..layers.spm import SpatialPriorModule
from .intern_vit import InternViT
from .intern_vit_args import check_drop_path_rate, check_images

SPM_STRIDES = (8, 16, 32)  # strides of the SPM levels the interactions use


class InteractionBlock(nn.Module):
    """Injector -> a range of ViT blocks -> Extractor (+ optional extra extractors).

    Args:
        dim: Token width.
        num_heads: Deformable attention heads.
        n_points: Sampling points per head and level.
        deform_ratio: Value width ratio of the deformable attentions.
        cffn_ratio: ConvFFN hidden ratio of the extractors.
        init_values: Initial injector gamma.
        drop_path: Stochastic depth of the extractors' ConvFFN.
        num_extra_extractors: Extractors appended after the main one.
        with_cp: Checkpoint the injector and extractors while training.
    """

    def __init__(self, dim: int, num_heads: int, n_points: int, deform_ratio: float,
                 cffn_ratio: float, init_values: float, drop_path: float,
                 num_extra_extractors: int, with_cp: bool) -> None:
        super().__init__()
        self.injector = Injector(dim, num_heads, n_points, len(SPM_STRIDES), deform_ratio,
                                 init_values, with_cp)
        self.extractors = nn.ModuleList(
            Extractor(dim, num_heads, n_points, deform_ratio, cffn_ratio=cffn_ratio,
                      drop_path=drop_path, with_cp=with_cp)
            for _ in range(1 + num_extra_extractors))

    def forward(self, x: torch.Tensor, c: torch.Tensor, cls: torch.Tensor,
                run_blocks: Callable[[torch.Tensor], torch.Tensor],
                inject_inputs: DeformInputs, extract_inputs: DeformInputs,
                level_shapes: Sequence[Shape]) -> Tuple[torch.Tensor, ...]:
        x = self.injector(x, c, inject_inputs)
        x = run_blocks(torch.cat([cls, x], dim=1))
        cls, x = x[:, :cls.shape[1]], x[:, cls.shape[1]:]
        for extractor in self.extractors:
            c = extractor(c, x, extract_inputs, level_shapes)
        return x, c, cls


@MODELS.register_module()
class InternViTAdapter(BaseModule):
    """InternViT with ViT-Adapter (SPM + injector/extractor interactions).

    Returns four NCHW maps of width ``C`` (the ViT width) at strides 4, 8, 16
    and 32: ``(B, C, ceil(H / s), ceil(W / s))``.

    Patch size: upstream ViT-Adapter for InternViT-6B resizes the 14x14 patch
    kernel to 16x16 so the ViT grid equals the SPM's 1/16 map and one set of
    reference points serves every level. We keep the pretrained patch 14 (no
    kernel resampling, the features the checkpoint was trained for) and let
    the deformable attention bridge the grids: every query's reference point
    is its pixel centre, normalised separately per value level by that level's
    pixel extent (``cells x stride``), with the token grid ``ceil(H/14) x
    ceil(W/14)`` and the SPM grids ``ceil(H/s) x ceil(W/s)`` read from the
    actual tensors at run time. Any input size works, square or not, and
    multiples of neither 14 nor 32 are needed. The ViT's contribution to each
    output level is its token map resized bilinearly to that level's size.

    Gradients and frozen ViTs: with ``vit.frozen=True`` the ViT's parameters
    take no gradient, but the injectors' outputs pass *through* the ViT blocks
    before the extractors read them, so the blocks run with autograd on
    (their activations are kept for the backward pass w.r.t. their inputs);
    only the patch embedding, which sees the image alone, runs without it.
    Set ``vit.with_cp=True`` to recompute block activations in the backward
    pass instead of storing them (``with_cp`` here does the same for the
    injectors and extractors; :meth:`set_grad_checkpointing` sets both).
    Token preparation and the block loop are InternViT's own public
    :meth:`InternViT.prepare_tokens` and :meth:`InternViT.run_blocks`, so the
    ViT's position handling, checkpointing and attention options (windows)
    apply here unchanged.

    Args:
        vit: InternViT arguments (``arch``, ``frozen``, ``with_cp``, ``dtype``,
            ``drop_path_rate``, ``init_cfg``...); ``out_indices`` is ignored.
        interaction_indexes: ``[start, end]`` (inclusive) block ranges, one
            interaction each, in order and non-overlapping.
        conv_inplanes: SPM stem width.
        deform_num_heads: Deformable attention heads (None: the ViT's heads).
        n_points: Sampling points per head and level.
        deform_ratio: Value width ratio of the deformable attentions.
        cffn_ratio: ConvFFN hidden ratio.
        init_values: Initial injector gamma (0: the adapter starts as identity).
        drop_path_rate: Stochastic depth of the extractors' ConvFFN.
        num_extra_extractors: Extractors added after the last interaction.
        add_vit_feature: Add the resized ViT maps to the pyramid.
        norm_cfg: Norm of the SPM convs (``BN``, ``SyncBN``, ``GN``).
        out_norm_cfg: Norm per output level (``SyncBN``/``BN``/``GN``, or
            ``LN`` for a channel LayerNorm).
        with_cp: Checkpoint injectors and extractors while training.
        init_cfg: mmengine init config of the adapter (the ViT's checkpoint
            goes in ``vit.init_cfg``).
    """

    def __init__(self,
                 vit: dict,
                 interaction_indexes: Sequence[Sequence[int]] = ((0, 11), (12, 23), (24, 35),
                                                                 (36, 47)),
                 conv_inplanes: int = 64,
                 deform_num_heads: Optional[int] = None,
                 n_points: int = 4,
                 deform_ratio: float = 0.25,
                 cffn_ratio: float = 0.25,
                 init_values: float = 0.0,
                 drop_path_rate: float = 0.0,
                 num_extra_extractors: int = 2,
                 add_vit_feature: bool = True,
                 norm_cfg: dict = dict(type='BN'),
                 out_norm_cfg: dict = dict(type='BN'),
                 with_cp: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_drop_path_rate(drop_path_rate)
        vit = {k: v for k, v in dict(vit).items() if k not in ('type', 'out_indices')}
        self.vit = InternViT(**vit)
        dim = self.vit.embed_dims
        self.embed_dims = dim
        self.interaction_indexes = self._check_indexes(interaction_indexes)
        self.add_vit_feature = add_vit_feature
        heads = deform_num_heads or self.vit.arch_settings['num_heads']

        self.spm = SpatialPriorModule(dim, conv_inplanes, norm_cfg)
        self.level_embed = nn.Parameter(torch.zeros(len(SPM_STRIDES), dim))
        n = len(self.interaction_indexes)
        self.interactions = nn.ModuleList(
            InteractionBlock(dim, heads, n_points, deform_ratio, cffn_ratio, init_values,
                             drop_path_rate, num_extra_extractors if i == n - 1 else 0, with_cp)
            for i in range(n))
        self.up = nn.ConvTranspose2d(dim, dim, 2, stride=2)
        self.out_norms = nn.ModuleList(_build_out_norm(out_norm_cfg, dim) for _ in range(4))
        self._init_adapter_weights()

    def _check_indexes(self, indexes: Sequence[Sequence[int]]) -> List[Tuple[int, int]]:
        result, prev_end = [], -1
        for pair in indexes:
            if len(pair) != 2 or not prev_end < pair[0] <= pair[1] < self.vit.num_layers:
                raise ValueError(
                    f'interaction_indexes must be increasing, non-overlapping [start, end] '
                    f'block ranges within 0..{self.vit.num_layers - 1}; got {list(indexes)} '
                    f'(bad entry {list(pair)})')
            result.append((int(pair[0]), int(pair[1])))
            prev_end = pair[1]
        if not result:
            raise ValueError('interaction_indexes is empty: give at least one [start, end]')
        return result

    def _init_adapter_weights(self) -> None:
        # Upstream's init: trunc-normal linears, fan-out normal convs, mmcv's
        # deformable-attention init, normal level embeddings, gamma as given.
        for name, m in self.named_modules():
            if name == 'vit' or name.startswith('vit.'):
                continue
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
                fan_out = m.kernel_size[0] * m.kernel_size[1] * m.out_channels // m.groups
                m.weight.data.normal_(0, math.sqrt(2.0 / fan_out))
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, DeformableCrossAttention):
                m.init_weights()
        nn.init.normal_(self.level_embed)

    def init_weights(self) -> None:
        """Load (or randomly init) the ViT; apply the adapter's own init."""
        self.vit.init_weights()
        if self.init_cfg is not None:
            super().init_weights()
        self._is_init = True

    def get_layer_depth(self, param_name: str, prefix: str = '') -> Tuple[int, int]:
        """Layer id for lr decay: the ViT's ids for ``vit.*``, the top id otherwise."""
        return self.vit.get_layer_depth(param_name, prefix + 'vit.')

    def no_weight_decay(self) -> set:
        """ViT embeddings, level embeddings and injector gammas (relative names)."""
        names = {'vit.' + n for n in self.vit.no_weight_decay()}
        names.add('level_embed')
        names.update(n for n, _ in self.named_parameters() if n.endswith('injector.gamma'))
        return names

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Checkpoint the ViT blocks, injectors and extractors (timm's name).

        One switch for the whole backbone: the ViT's own
        :meth:`InternViT.set_grad_checkpointing` (its blocks run through
        :meth:`InternViT.run_blocks`) and the interactions' ``with_cp``.

        Args:
            enable: Checkpoint while autograd records the layers.
        """
        self.vit.set_grad_checkpointing(enable)
        for interaction in self.interactions:
            interaction.injector.with_cp = enable
            for extractor in interaction.extractors:
                extractor.with_cp = enable

    def _deform_inputs(self, vit_grid: Shape, level_shapes: Sequence[Shape],
                       device: torch.device) -> Tuple[DeformInputs, DeformInputs]:
        patch = self.vit.patch_size
        # Injector: ViT tokens query the three SPM levels.
        ref = reference_points(grid_centers(vit_grid, patch, device), level_shapes, SPM_STRIDES)
        inject = (ref[None], *level_layout(level_shapes, device))
        # Extractor: SPM tokens of all levels query the one ViT grid.
        centers = torch.cat([grid_centers(s, st, device)
                             for s, st in zip(level_shapes, SPM_STRIDES)])
        ref = reference_points(centers, [vit_grid], [patch])
        extract = (ref[None], *level_layout([vit_grid], device))
        return inject, extract

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        check_images(x, self.vit.in_channels)
        B = x.shape[0]
        c1, *levels = self.spm(x)
        level_shapes = [tuple(m.shape[-2:]) for m in levels]
        c = torch.cat([m.flatten(2).transpose(1, 2) + self.level_embed[i]
                       for i, m in enumerate(levels)], dim=1)
        tokens, grid = self.vit.prepare_tokens(x)
        prefix = self.vit.num_prefix_tokens
        cls, tokens = tokens[:, :prefix], tokens[:, prefix:]
        inject, extract = self._deform_inputs(grid, level_shapes, x.device)

        vit_maps = []
        for block, (start, end) in zip(self.interactions, self.interaction_indexes):
            run_blocks = partial(self.vit.run_blocks, grid=grid, start=start, end=end + 1)
            tokens, c, cls = block(tokens, c, cls, run_blocks, inject, extract, level_shapes)
            vit_maps.append(tokens.float().transpose(1, 2).reshape(B, -1, *grid))

        c2, c3, c4 = split_levels(c, level_shapes)
        # 2 x ceil(H/8) can exceed ceil(H/4) by one: crop to the stem's grid.
        c1 = c1 + self.up(c2)[..., :c1.shape[-2], :c1.shape[-1]]
        pyramid = [c1, c2, c3, c4]
        if self.add_vit_feature:
            # Level i reads interaction i when there are four; fewer are spread
            # evenly (two: 0, 0, 1, 1).
            n = len(vit_maps)
            maps = [vit_maps[i * n // 4] for i in range(4)]
            pyramid = [p + F.interpolate(m, size=p.shape[-2:], mode='bilinear',
                                         align_corners=False)
                       for p, m in zip(pyramid, maps)]
        return tuple(norm(p) for norm, p in zip(self.out_norms, pyramid))


def _build_out_norm(cfg: dict, channels: int) -> nn.Module:
    if cfg.get('type') in ('LN', 'LN2d'):
        # mmcv's 'LN' normalises the last axis; outputs here are NCHW.
        return LayerNorm2d(channels, eps=cfg.get('eps', 1e-6))
    return build_norm_layer(cfg, channels)[1]
