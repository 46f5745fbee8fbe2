"""A 4-level feature pyramid from stride-14 ViT maps."""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from timm.layers import LayerNorm2d

from mmseg_internvit.registry import MODELS


def _upsample(channels: int, factor: int) -> nn.Sequential:
    if factor == 2:
        return nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, stride=2))
    # x4: deconv, LN + GELU, deconv (the upstream ViT-Det / InternViT recipe).
    return nn.Sequential(nn.ConvTranspose2d(channels, channels, 2, stride=2),
                         LayerNorm2d(channels), nn.GELU(),
                         nn.ConvTranspose2d(channels, channels, 2, stride=2))


@MODELS.register_module()
class SimpleFPN(BaseModule):
    """Turn one or four same-stride ViT maps into a x4, x2, x1, x1/2 pyramid.

    With four inputs (the outputs of four blocks) level ``i`` is made from input
    ``i``, as in the InternViT segmentation code; with one input (ViTDet style,
    the last block) every level is made from it. ``out_channels`` adds a 1x1 +
    3x3 conv pair with LayerNorm per level, the ViTDet projection that mmdet's
    FPN-width heads expect; ``extra_pool`` appends a max-pooled level for
    Mask R-CNN's 5-level RPN.

    Args:
        in_channels: Channels of the ViT maps.
        num_inputs: 1 or 4.
        out_channels: Optional output width (None keeps ``in_channels``).
        extra_pool: Append ``MaxPool2d(1, stride=2)`` of the last level.
        init_cfg: mmengine init config.
    """

    def __init__(self, in_channels: int, num_inputs: int = 4,
                 out_channels: Optional[int] = None, extra_pool: bool = False,
                 init_cfg: Optional[Union[dict, list]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_inputs not in (1, 4):
            raise ValueError(f'SimpleFPN takes 1 or 4 inputs, got num_inputs={num_inputs}')
        self.num_inputs = num_inputs
        self.scales = nn.ModuleList([
            _upsample(in_channels, 4), _upsample(in_channels, 2), nn.Identity(),
            nn.MaxPool2d(kernel_size=2, stride=2)])
        self.projections = None
        if out_channels is not None:
            self.projections = nn.ModuleList(
                nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False),
                              LayerNorm2d(out_channels),
                              nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
                              LayerNorm2d(out_channels)) for _ in range(4))
        self.extra_pool = nn.MaxPool2d(1, stride=2) if extra_pool else None

    def forward(self, inputs: Sequence[torch.Tensor]) -> Tuple[torch.Tensor, ...]:
        if len(inputs) != self.num_inputs:
            raise ValueError(f'SimpleFPN was built for {self.num_inputs} inputs but got '
                             f'{len(inputs)}: set num_inputs to the length of the '
                             "backbone's out_indices")
        maps = list(inputs) * (4 // self.num_inputs)
        outs: List[torch.Tensor] = [scale(x) for scale, x in zip(self.scales, maps)]
        if self.projections is not None:
            outs = [proj(x) for proj, x in zip(self.projections, outs)]
        if self.extra_pool is not None:
            outs.append(self.extra_pool(outs[-1]))
        return tuple(outs)
