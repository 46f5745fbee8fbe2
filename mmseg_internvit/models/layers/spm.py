"""Spatial prior module of ViT-Adapter: a small CNN giving 1/4..1/32 maps."""
from typing import Tuple

import torch
import torch.nn as nn
from mmcv.cnn import build_norm_layer


def _conv_norm_relu(in_ch: int, out_ch: int, stride: int, norm_cfg: dict) -> list:
    return [nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
            build_norm_layer(norm_cfg, out_ch)[1], nn.ReLU(inplace=True)]


class SpatialPriorModule(nn.Module):
    """Conv stem to 1/4, then stride-2 convs to 1/8, 1/16, 1/32, each 1x1 to ``embed_dims``.

    Every stride-2 op uses padding 1, so an ``H x W`` input gives maps of
    ``ceil(H / s) x ceil(W / s)`` for ``s`` in 4, 8, 16, 32.

    Args:
        embed_dims: Output width (the ViT width).
        inplanes: Width of the stem (1/8 and 1/16, 1/32 use 2x and 4x).
        norm_cfg: mmcv norm config of the convs (``BN``, ``SyncBN``, ``GN``).
    """

    def __init__(self, embed_dims: int, inplanes: int = 64,
                 norm_cfg: dict = dict(type='BN')) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            *_conv_norm_relu(3, inplanes, 2, norm_cfg),
            *_conv_norm_relu(inplanes, inplanes, 1, norm_cfg),
            *_conv_norm_relu(inplanes, inplanes, 1, norm_cfg),
            nn.MaxPool2d(kernel_size=3, stride=2, padding=1))
        self.conv2 = nn.Sequential(*_conv_norm_relu(inplanes, 2 * inplanes, 2, norm_cfg))
        self.conv3 = nn.Sequential(*_conv_norm_relu(2 * inplanes, 4 * inplanes, 2, norm_cfg))
        self.conv4 = nn.Sequential(*_conv_norm_relu(4 * inplanes, 4 * inplanes, 2, norm_cfg))
        self.fc1 = nn.Conv2d(inplanes, embed_dims, 1)
        self.fc2 = nn.Conv2d(2 * inplanes, embed_dims, 1)
        self.fc3 = nn.Conv2d(4 * inplanes, embed_dims, 1)
        self.fc4 = nn.Conv2d(4 * inplanes, embed_dims, 1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        c1 = self.stem(x)
        c2 = self.conv2(c1)
        c3 = self.conv3(c2)
        c4 = self.conv4(c3)
        return self.fc1(c1), self.fc2(c2), self.fc3(c3), self.fc4(c4)
