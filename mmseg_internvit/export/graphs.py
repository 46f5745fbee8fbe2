"""The functions that get exported, and the model parts that cannot be.

A segmentor's graph is mmseg's ``encode_decode`` on a normalised image batch:
backbone, neck and decode head, logits resized to the input size (what
``whole`` inference computes; ``slide`` inference calls it once per crop).
"""
from typing import List, Tuple

import torch
import torch.nn as nn
from mmseg.models.segmentors import EncoderDecoder

OUTPUTS = ('logits', 'labels')


class ExportError(ValueError):
    """The model, its options or the output path cannot be exported as asked."""


class SegmentorGraph(nn.Module):
    """``inputs (N, 3, H, W)`` -> ``logits (N, K, H, W)`` or ``labels (N, H, W)``.

    Args:
        segmentor: An mmseg ``EncoderDecoder`` (or subclass), in eval mode.
        output: ``'logits'`` or ``'labels'`` (int64 argmax over the classes;
            multi-class heads only).
    """

    def __init__(self, segmentor: EncoderDecoder, output: str = 'logits') -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ExportError(f'output must be one of {OUTPUTS}, got {output!r}')
        self.segmentor = segmentor
        self.output = output

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        # A torch.Size img_shape is what mmseg's heads read as "resize to the input".
        metas = [dict(img_shape=inputs.shape[2:])]
        logits = self.segmentor.encode_decode(inputs, metas)
        return logits if self.output == 'logits' else logits.argmax(dim=1)


class BackboneGraph(nn.Module):
    """``inputs (N, 3, H, W)`` -> the backbone's feature maps (before any neck).

    Args:
        segmentor: An mmseg ``EncoderDecoder``; only its ``backbone`` runs.
    """

    def __init__(self, segmentor: EncoderDecoder) -> None:
        super().__init__()
        self.backbone = segmentor.backbone

    def forward(self, inputs: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        return tuple(self.backbone(inputs))


def output_names(graph: nn.Module, count: int) -> List[str]:
    """Names of the graph's ``count`` outputs: ``logits``/``labels`` or ``features_0..n``."""
    if isinstance(graph, SegmentorGraph):
        return [graph.output]
    return [f'features_{i}' for i in range(count)]


def refuse_bfloat16(dtype: torch.dtype) -> None:
    """Raise :class:`ExportError` for a bfloat16 backbone (see :func:`check_exportable`)."""
    if dtype == torch.bfloat16:
        raise ExportError('a bfloat16 backbone (the frozen configs\' default) cannot be exported: '
                          'ONNX Conv has no bfloat16 before opset 22 and onnxruntime\'s CPU '
                          'provider, which checks the export, has no bfloat16 Conv; use '
                          '--dtype fp16 (half-size file) or --dtype fp32')


def check_exportable(model: nn.Module, dynamic: bool, dtype: torch.dtype) -> None:
    """Raise :class:`ExportError` naming the first part that cannot be exported as asked.

    Checked: the model is an mmseg ``EncoderDecoder``; no bfloat16 parameters
    (ONNX ``Conv`` has no bfloat16 before opset 22 and onnxruntime's CPU
    provider, which verifies every export, has no bfloat16 ``Conv`` at all);
    with ``dynamic``, no mmcv ``MultiScaleDeformableAttention`` (the ViT-Adapter
    builds its level layout from Python ints, so its graph holds for one size).
    """
    if not isinstance(model, EncoderDecoder):
        raise ExportError(f'model type {type(model).__name__} cannot be exported: only mmseg '
                          'EncoderDecoder segmentors are (detectors are not supported)')
    refuse_bfloat16(dtype)
    if dynamic:
        for name, module in model.named_modules():
            if type(module).__name__ == 'MultiScaleDeformableAttention':
                raise ExportError(
                    f'{name} (mmcv MultiScaleDeformableAttention, ViT-Adapter) cannot be '
                    'exported with dynamic height/width: its level shapes and start indices '
                    'are computed from Python ints and would be frozen at the sample size; '
                    'export a fixed size with --shape H W instead of --dynamic')
