"""ONNX export of segmentors, its onnxruntime check, and an ONNX inference runner.

``tools/export_onnx.py`` calls :func:`export_segmentor`; :class:`OnnxSegmenter`
runs an exported file with the pre- and post-processing of
:class:`~mmseg_internvit.inference.Segmenter` (``tools/infer.py --onnx``).
"""
from mmseg_internvit import runner_import  # noqa: F401 (first: see that module)
from .exportable_pooling import ExportableAdaptiveAvgPool2d, exportable_adaptive_pools
from .exporter import (DEFAULT_OPSET, OPSETS, ExportFailed, ExportReport, export_folder,
                       export_segmentor)
from .graphs import BackboneGraph, ExportError, SegmentorGraph, check_exportable
from .metadata import build_metadata, read_metadata
from .runner import OnnxSegmenter
from .verify import CheckResult

__all__ = [
    'ExportableAdaptiveAvgPool2d', 'exportable_adaptive_pools', 'DEFAULT_OPSET', 'OPSETS',
    'ExportFailed', 'ExportReport', 'export_folder', 'export_segmentor', 'BackboneGraph',
    'ExportError', 'SegmentorGraph', 'check_exportable', 'build_metadata', 'read_metadata',
    'CheckResult', 'OnnxSegmenter'
]
