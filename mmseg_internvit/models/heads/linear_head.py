"""Linear probe decode head: BatchNorm + 1x1 conv over one backbone level."""
from typing import List

import torch
from mmcv.cnn import build_norm_layer
from mmseg.models.decode_heads.decode_head import BaseDecodeHead

from mmseg_internvit.registry import MODELS


@MODELS.register_module()
class LinearProbeHead(BaseDecodeHead):
    """The linear probe of the InternViT paper: BN then a 1x1 classifier.

    For InternViT-6B on ADE20K this is 3200 * 150 + 150 + 2 * 3200 ~= 0.49M
    trainable parameters. Upsampling to the label size happens in mmseg's loss
    and prediction code, as for any decode head.

    Args:
        in_channels: Channels of the selected backbone level.
        norm_cfg: Norm before the classifier (``SyncBN`` in multi-GPU configs;
            mmengine reverts it to BN when not distributed).
        **kwargs: Passed to :class:`BaseDecodeHead` (``num_classes``,
            ``in_index``, ``loss_decode``, ...). ``channels`` defaults to
            ``in_channels``: there is no hidden layer.
    """

    def __init__(self, in_channels: int, norm_cfg: dict = dict(type='SyncBN'),
                 **kwargs) -> None:
        kwargs.setdefault('channels', in_channels)
        if kwargs['channels'] != in_channels:
            raise ValueError(f'LinearProbeHead has no hidden layer: channels '
                             f'({kwargs["channels"]}) must equal in_channels ({in_channels})')
        super().__init__(in_channels=in_channels, norm_cfg=norm_cfg, **kwargs)
        self.bn = build_norm_layer(norm_cfg, in_channels)[1]

    def forward(self, inputs: List[torch.Tensor]) -> torch.Tensor:
        x = self._transform_inputs(inputs)
        return self.cls_seg(self.bn(x))
