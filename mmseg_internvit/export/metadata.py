"""What an exported file states about itself (ONNX ``metadata_props``).

Everything a runner needs besides the graph: the normalisation the graph
expects (its input is the normalised image, as ``encode_decode`` receives
it), the test pipeline and sliding-window settings of the config, and the
class names and colours. Simple values are JSON; the pipeline and the data
preprocessor are Python literals, exactly as in the config (tuples stay
tuples, which mmcv's transforms need).
"""
import ast
import json
from typing import Any, Dict, Optional

from mmengine.config import Config, ConfigDict

FORMAT_VERSION = '1'
INPUT_DESCRIPTION = ('float NCHW image batch, normalised: '
                     '(pixel - mean) / std per channel, channels RGB if bgr_to_rgb else as '
                     'loaded (BGR), any height/width if dynamic (padded inside to a multiple '
                     'of the patch size)')
JSON_KEYS = ('mean', 'std', 'bgr_to_rgb', 'pad_val', 'size_divisor', 'classes', 'palette',
             'test_cfg', 'align_corners', 'threshold', 'dynamic', 'export_shape', 'outputs',
             'opset')
LITERAL_KEYS = ('test_pipeline', 'data_preprocessor')


def _plain(value: Any) -> Any:
    """ConfigDicts and lists inside configs as plain dicts/lists (tuples kept)."""
    if isinstance(value, (ConfigDict, dict)):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    return value


def build_metadata(cfg: Config, test_pipeline: list, dataset_meta: dict, decode_head: Any,
                   export: Dict[str, Any]) -> Dict[str, str]:
    """The ``metadata_props`` of an exported segmentor.

    Args:
        cfg: The prepared config (``model.data_preprocessor``, ``model.test_cfg``).
        test_pipeline: The config's test pipeline (the runner drops its annotation steps).
        dataset_meta: ``classes`` and ``palette``.
        decode_head: The decode head (``align_corners``, ``threshold``).
        export: ``dynamic``, ``export_shape``, ``outputs``, ``opset``, ``dtype``,
            ``config``, ``checkpoint`` of this export.
    """
    pre = _plain(cfg.model.get('data_preprocessor') or {})
    pre_test = pre.get('test_cfg') or {}
    test_cfg = {k: v for k, v in _plain(cfg.model.get('test_cfg') or {}).items()
                if k in ('mode', 'crop_size', 'stride', 'batch_size')}
    values = dict(
        mean=pre.get('mean'), std=pre.get('std'), bgr_to_rgb=bool(pre.get('bgr_to_rgb')),
        pad_val=pre.get('pad_val', 0), size_divisor=pre_test.get('size_divisor'),
        classes=list(dataset_meta['classes']), palette=[list(p) for p in dataset_meta['palette']],
        test_cfg=test_cfg, align_corners=bool(decode_head.align_corners),
        threshold=getattr(decode_head, 'threshold', None), dynamic=export['dynamic'],
        export_shape=list(export['export_shape']), outputs=export['outputs'],
        opset=export['opset'])
    props = {key: json.dumps(values[key]) for key in JSON_KEYS}
    props.update(test_pipeline=repr(_plain(test_pipeline)), data_preprocessor=repr(pre))
    props.update({'mmseg_internvit.format': FORMAT_VERSION, 'input': INPUT_DESCRIPTION,
                  'dtype': export['dtype'], 'config': export['config'],
                  'checkpoint': export['checkpoint']})
    return props


def read_metadata(props: Dict[str, str], path: Optional[str] = None) -> Dict[str, Any]:
    """Decode :func:`build_metadata`'s strings; raise ``ValueError`` naming ``path``
    if the file was not written by :func:`~mmseg_internvit.export.export_segmentor`."""
    if props.get('mmseg_internvit.format') != FORMAT_VERSION:
        raise ValueError(f'{path or "the ONNX model"} has no mmseg_internvit export metadata '
                         f'(format {FORMAT_VERSION}); export it with tools/export_onnx.py')
    meta = {key: json.loads(props[key]) for key in JSON_KEYS}
    meta.update({key: ast.literal_eval(props[key]) for key in LITERAL_KEYS})
    meta.update({key: props[key] for key in ('input', 'dtype', 'config', 'checkpoint')})
    return meta
