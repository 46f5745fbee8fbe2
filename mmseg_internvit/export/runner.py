"""Run an exported segmentor with onnxruntime, pre- and post-processed as Segmenter."""
import os
import os.path as osp
from typing import List, Optional, Sequence, Tuple

import numpy as np
import torch
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.structures import PixelData
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from mmseg_internvit.inference.segmenter import (Segmenter, build_pipeline, class_probabilities,
                                                 prepare_config, same_size_groups)
from mmseg_internvit.models.segmentors import results_at_model_resolution, slide_logits
from mmseg_internvit.registration import register_all_modules
from .metadata import read_metadata

PROVIDERS = {'cpu': 'CPUExecutionProvider', 'cuda': 'CUDAExecutionProvider'}


def check_external_data(model, onnx_path: str) -> None:
    """Refuse an export whose weights file (``<name>.onnx.data``) is not beside it.

    Args:
        model: The ``onnx.ModelProto``, loaded without its external data.
        onnx_path: Where it was loaded from (external data is found relative to it).

    Raises:
        FileNotFoundError: naming the missing file.
    """
    from onnx.external_data_helper import ExternalDataInfo, uses_external_data
    folder = osp.dirname(osp.abspath(onnx_path))
    locations = sorted({ExternalDataInfo(tensor).location for tensor in model.graph.initializer
                        if uses_external_data(tensor)})
    missing = [name for name in locations if not osp.isfile(osp.join(folder, name))]
    if missing:
        raise FileNotFoundError(f'{onnx_path} keeps its weights in {", ".join(missing)}, which '
                                'is not beside it: keep the .data file in the same folder as '
                                'the .onnx file (copy or move them together)')


def check_tile_fits(meta: dict, test_cfg: dict, onnx_path: str) -> None:
    """Refuse sliding windows that a fixed-size export cannot run, before any image.

    Args:
        meta: The file's metadata (``dynamic``, ``export_shape``).
        test_cfg: The sliding-window settings in use (after ``--tile``).
        onnx_path: How to name the file in the error.

    Raises:
        ValueError: the export is fixed-size and the window is another size.
    """
    if meta['dynamic'] or test_cfg.get('mode') != 'slide':
        return
    tile, (h, w) = list(test_cfg['crop_size']), meta['export_shape']
    if tile != [h, w]:
        raise ValueError(f'{onnx_path} was exported for {h}x{w} inputs only, but the '
                         f'sliding window is {tile[0]}x{tile[1]}: use --tile {h} {w} '
                         '(or export with --dynamic)')


class OnnxSegmenter(Segmenter):
    """A file written by ``tools/export_onnx.py``, run with onnxruntime.

    Everything around the graph is the PyTorch :class:`Segmenter`'s: the
    config's test pipeline and ``SegDataPreProcessor`` (stored in the file),
    mmseg's sliding windows with crops batched (``slide_logits``), labels at
    the photo's size from logits at the model's resolution, the same result
    objects; only ``encode_decode`` runs in onnxruntime. No config or
    checkpoint is needed. Test-time augmentation is not supported.

    Example::

        seg = OnnxSegmenter('upernet.onnx', batch_size=2)
        [result] = seg(['photo.jpg'])
        label = result.pred_sem_seg.data[0].numpy()

    Args:
        onnx_path: An export with ``logits`` output (the default of the tool).
        device: ``'cpu'`` or ``'cuda'`` (onnxruntime's CUDA provider, where
            installed).
        batch_size: Images per forward (images of different sizes are run in
            separate forwards).
        tile, stride, crop_batch: Sliding-window overrides, as for
            :func:`~mmseg_internvit.inference.prepare_config`.
        keep_probs: Add ``seg_probs`` (class probabilities at the model's
            resolution) to every result.
    """

    def __init__(self, onnx_path: str, device: str = 'cpu', batch_size: int = 1,
                 tile: Optional[Sequence[int]] = None, stride: Optional[Sequence[int]] = None,
                 crop_batch: Optional[int] = None, keep_probs: bool = False) -> None:
        import onnx
        import onnxruntime as ort
        register_all_modules()  # the stored pipeline may name this package's transforms
        onnx_path = os.fspath(onnx_path)
        if not osp.isfile(onnx_path):
            raise FileNotFoundError(f'ONNX model {onnx_path} does not exist')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        provider = PROVIDERS.get(device.split(':')[0])
        if provider not in ort.get_available_providers():
            raise ValueError(f'device {device!r}: onnxruntime here has the providers '
                             f'{ort.get_available_providers()}; use cpu')
        try:
            model = onnx.load(onnx_path, load_external_data=False)
        except Exception as e:  # noqa: BLE001  (protobuf's DecodeError and friends)
            raise ValueError(f'{onnx_path} is not a readable ONNX model: {e}') from None
        self.meta = read_metadata({p.key: p.value for p in model.metadata_props}, onnx_path)
        if self.meta['outputs'] != ['logits']:
            raise ValueError(f'{onnx_path} outputs {self.meta["outputs"]}; the runner needs '
                             'class logits: export with --output logits (the default)')
        check_external_data(model, onnx_path)
        cfg = prepare_config(Config(dict(model=dict(type='OnnxGraph',
                                                    test_cfg=self.meta['test_cfg']),
                                         test_pipeline=self.meta['test_pipeline'])),
                             tile, stride, crop_batch)
        self.test_cfg = cfg.model.test_cfg
        check_tile_fits(self.meta, self.test_cfg, onnx_path)
        self.pipeline = build_pipeline(cfg)
        self.data_preprocessor = MODELS.build(self.meta['data_preprocessor'])
        self.session = ort.InferenceSession(onnx_path, providers=[provider])
        self.input_name = self.session.get_inputs()[0].name
        self.out_channels = self.session.get_outputs()[0].shape[1]  # 1 for binary heads
        self.onnx_path = onnx_path
        self.batch_size = batch_size
        self.keep_probs = keep_probs
        self.tta = False
        self.device = device

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class names, indexed by class id."""
        return tuple(self.meta['classes'])

    @property
    def palette(self) -> List[List[int]]:
        """RGB colour of every class, indexed by class id."""
        return self.meta['palette']

    def encode_decode(self, inputs: torch.Tensor, batch_img_metas: List[dict]) -> torch.Tensor:
        """Logits ``(N, K, H, W)`` of a normalised batch, from onnxruntime."""
        if not self.meta['dynamic'] and list(inputs.shape[2:]) != self.meta['export_shape']:
            h, w = self.meta['export_shape']
            raise ValueError(f'{self.onnx_path} was exported for {h}x{w} inputs only, got '
                             f'{inputs.shape[2]}x{inputs.shape[3]}: export with --dynamic')
        array = np.ascontiguousarray(inputs.numpy(), dtype=np.float32)
        return torch.from_numpy(self.session.run(None, {self.input_name: array})[0])

    def predict_batch(self, arrays: Sequence[np.ndarray]) -> List[SegDataSample]:
        """Segment BGR arrays; arrays that share a size share a forward."""
        items = [self.pipeline(dict(img=array)) for array in arrays]
        results = [None] * len(items)
        for indices in same_size_groups(items):
            data = self.data_preprocessor(pseudo_collate([items[i] for i in indices]), False)
            inputs, samples = data['inputs'], data['data_samples']
            metas = [sample.metainfo for sample in samples]
            if self.test_cfg.get('mode') == 'slide':
                logits = slide_logits(inputs, metas, self.encode_decode,
                                      tuple(self.test_cfg.crop_size), tuple(self.test_cfg.stride),
                                      self.test_cfg.get('batch_size', 1), self.out_channels)
            else:
                logits = self.encode_decode(inputs, metas)
            samples = results_at_model_resolution(logits, samples, self.meta['align_corners'],
                                                  self.meta['threshold'])
            for i, sample in zip(indices, samples):
                if self.keep_probs:
                    sample.seg_probs = PixelData(data=class_probabilities(sample.seg_logits.data))
                results[i] = sample
        return results
