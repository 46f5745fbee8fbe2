"""Build a segmentor from a config and checkpoint, and run it on images."""
import copy
import os
import os.path as osp
import warnings
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from mmcv.transforms import Compose
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.registry import DefaultScope
from mmengine.structures import PixelData
from mmseg.apis import init_model
from mmseg.registry import DATASETS, MODELS
from mmseg.models.segmentors import EncoderDecoder
from mmseg.structures import SegDataSample

from mmseg_internvit.checkpoint import load_model_weights
from mmseg_internvit.dtypes import dtype_name
from mmseg_internvit.registration import register_all_modules
from mmseg_internvit.models.backbones.vit_config import drop_pretrained, internvit_config
from .image_io import read_image

ImageInput = Union[str, os.PathLike, np.ndarray]


def prepare_config(config: Union[str, Config], tile: Optional[Sequence[int]] = None,
                   stride: Optional[Sequence[int]] = None, crop_batch: Optional[int] = None,
                   dtype: Optional[str] = None, cfg_options: Optional[dict] = None,
                   checkpoint: Optional[str] = None, full_size_logits: bool = True,
                   compile: bool = False) -> Config:
    """Load ``config`` and apply the inference overrides.

    Args:
        config: Config path or object (a copy is changed).
        checkpoint: The whole-model checkpoint to be loaded; a backbone with
            ``arch='auto'`` reads its architecture from it.
        cfg_options: Entries merged into the config first (``{'a.b': 1}``).
        tile: Sliding-window crop ``(h, w)``; switches ``test_cfg`` to slide mode.
        stride: Window stride ``(h, w)``; defaults to the config's stride, or
            two thirds of ``tile`` when the config does not slide.
        crop_batch: Crops per forward in slide mode (``test_cfg.batch_size``).
        dtype: Backbone dtype, ``'bf16'``/``'bfloat16'``, ``'fp16'``/``'float16'`` or
            ``'fp32'``/``'float32'`` (heads stay fp32).
        compile: Compile the InternViT's blocks (``compile=True`` on the
            backbone, or on the adapter's ``vit``; see :class:`InternViT`).
        full_size_logits: False keeps ``seg_logits`` at the model's resolution
            and computes the full-size labels in row bands, so memory does not
            grow with the photo (see :class:`BatchedSlideEncoderDecoder`).

    An ``EncoderDecoder`` becomes a :class:`BatchedSlideEncoderDecoder` (same
    weights, same labels; slide crops batched).
    """
    cfg = Config.fromfile(config) if not isinstance(config, Config) else copy.deepcopy(config)
    if cfg_options:
        cfg.merge_from_dict(cfg_options)
    model = cfg.model
    test_cfg = model.get('test_cfg') or {}
    if tile is not None or stride is not None:
        if tile is None:
            tile = test_cfg.get('crop_size')
            if tile is None:
                raise ValueError('--stride needs --tile: the config has no test_cfg.crop_size')
        stride_given = stride is not None
        if stride is None:
            stride = test_cfg.get('stride') if test_cfg.get('mode') == 'slide' else None
            stride = stride or [max(1, t * 2 // 3) for t in tile]
        tile, stride = _pair('tile', tile), _pair('stride', stride)
        if stride[0] > tile[0] or stride[1] > tile[1]:
            raise ValueError(_stride_error(tile, stride, stride_given))
        test_cfg.update(mode='slide', crop_size=tile, stride=stride)
    if model.type == 'EncoderDecoder':
        model.type = 'BatchedSlideEncoderDecoder'
    test_cfg['full_size_logits'] = full_size_logits
    if test_cfg.get('mode') == 'slide':
        if crop_batch is not None:
            if crop_batch < 1:
                raise ValueError(f'crops per forward must be >= 1, got {crop_batch}')
            test_cfg['batch_size'] = crop_batch
    model.test_cfg = test_cfg
    # --dtype and --compile are arguments of the InternViT (an adapter's ViT).
    vit = internvit_config(model.get('backbone'))
    for flag, key, value, what in (
            ('--dtype', 'dtype', None if dtype is None else dtype_name(dtype),
             "sets the dtype of an InternViT backbone (or an adapter's ViT)"),
            ('--compile', 'compile', compile or None, 'compiles the blocks of an InternViT '
                                                      'backbone')):
        if value is None:
            continue
        if vit is None:
            raise ValueError(f"{flag} {what}, but model.backbone is "
                             f"{(model.get('backbone') or {}).get('type')!r}; drop {flag}")
        vit[key] = value
    # The checkpoint holds every weight (an arch='auto' ViT reads its arch there).
    drop_pretrained(model.get('backbone'), checkpoint)
    return cfg


def _stride_error(tile: Tuple[int, int], stride: Tuple[int, int], given: bool) -> str:
    """Why a stride larger than the tile is refused, and what to pass instead."""
    problem = 'pixels between windows would get no prediction'
    if given:
        return f'stride {stride} is larger than tile {tile}: {problem}; use a stride <= the tile'
    return (f"the config's sliding-window stride {stride} is larger than tile {tile}: "
            f'{problem}; give --stride H W (at most the tile) with --tile')


def _pair(name: str, value: Sequence[int]) -> Tuple[int, int]:
    value = tuple(int(v) for v in value)
    if len(value) != 2 or min(value) < 1:
        raise ValueError(f'{name} must be two positive ints (H W), got {value}')
    return value


def dataset_meta(cfg: Config, checkpoint_meta: dict, num_classes: int) -> dict:
    """Class names and palette: the checkpoint's, else the config dataset's, else generated."""
    candidates = [checkpoint_meta.get('dataset_meta') or {}]
    dataset_type = cfg.get('test_dataloader', {}).get('dataset', {}).get('type')
    if isinstance(dataset_type, str) and DATASETS.get(dataset_type) is not None:
        candidates.append(getattr(DATASETS.get(dataset_type), 'METAINFO', {}))
    for meta in candidates:
        classes = meta.get('classes')
        if classes is not None and len(classes) == num_classes:
            palette = meta.get('palette')
            if palette is None or len(palette) < num_classes:
                palette = generated_palette(num_classes)
            return dict(classes=tuple(classes), palette=[list(p) for p in palette[:num_classes]])
    return dict(classes=tuple(f'class_{i}' for i in range(num_classes)),
                palette=generated_palette(num_classes))


def generated_palette(num_classes: int) -> List[List[int]]:
    """Fixed random colours (seeded, so runs agree)."""
    rng = np.random.RandomState(42)
    return rng.randint(0, 256, size=(num_classes, 3)).tolist()


def build_pipeline(cfg: Config, tta: bool = False) -> Compose:
    """The config's test (or TTA) pipeline for in-memory BGR images, without annotations."""
    if tta:
        if 'tta_pipeline' not in cfg:
            raise ValueError('--tta needs tta_pipeline (and tta_model) in the config')
        steps = copy.deepcopy(cfg.tta_pipeline)
    else:
        steps = copy.deepcopy(cfg.get('test_pipeline') or cfg.test_dataloader.dataset.pipeline)
    steps = _without_annotations(steps)
    if not steps or 'LoadImageFrom' not in steps[0].get('type', ''):
        raise ValueError(f'the test pipeline must start with an image loader, got {steps[:1]}')
    steps[0] = dict(type='LoadImageFromNDArray')
    # mmseg's transforms are found through the default scope, which a caller
    # without a runner or init_model (OnnxSegmenter) has not set.
    with DefaultScope.overwrite_default_scope('mmseg'):
        return Compose(steps)


def _without_annotations(steps: list) -> list:
    kept = []
    for step in steps:
        if step.get('type') == 'LoadAnnotations':
            continue
        if step.get('type') == 'TestTimeAug':
            # A list of alternatives holding only LoadAnnotations disappears.
            step = dict(step, transforms=[
                alts for alts in ([t for t in alternatives if t.get('type') != 'LoadAnnotations']
                                  for alternatives in step['transforms']) if alts])
        kept.append(step)
    return kept


def check_segmentor(cfg: Config, config_name: str, action: str = 'run here',
                    error: type = ValueError) -> None:
    """Refuse a config whose model is not an mmseg ``EncoderDecoder`` (a detector,
    say) before it is built: building it with mmseg's arguments would fail obscurely.

    Args:
        cfg: The loaded config.
        config_name: How to name the config in the error (its path).
        action: What only segmentors can be, for the message (``'exported'``).
        error: The ``ValueError`` subclass to raise.

    Raises:
        ValueError: ``cfg.model.type`` is not an ``EncoderDecoder`` (or subclass)
            in mmseg's registry.
    """
    model_type = cfg.model.get('type')
    model_class = MODELS.get(model_type) if isinstance(model_type, str) else None
    if model_class is None or not issubclass(model_class, EncoderDecoder):
        raise error(f'model type {model_type!r} in {config_name} is not an mmseg '
                    f'segmentor: only EncoderDecoder segmentation configs can be {action} '
                    '(run detection configs with mmdet)')


def check_device(device: str, name: str = 'device') -> None:
    """Refuse a device this machine cannot run on, before any model is loaded.

    Args:
        device: ``'cpu'``, ``'cuda'``, ``'cuda:N'``.
        name: How to name the argument in the error (``'--device'`` for the tool).

    Raises:
        ValueError: not a CPU or CUDA device, CUDA missing, or no GPU ``N``.
    """
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError):
        parsed = None
    if parsed is None or parsed.type not in ('cpu', 'cuda'):
        raise ValueError(f'{name} {device}: not a device to run on; use cpu, cuda or cuda:N')
    if parsed.type == 'cuda':
        if not torch.cuda.is_available():
            raise ValueError(f'{name} {device}: CUDA is not available here; use cpu')
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            raise ValueError(f'{name} {device}: this machine has {count} CUDA device(s), '
                             f'cuda:0 to cuda:{count - 1}')


def check_bgr_array(array: np.ndarray, where: str) -> None:
    """Refuse an array that is not an ``(H, W, 3)`` uint8 BGR image with pixels.

    Args:
        array: The image given to :class:`Segmenter`.
        where: How to name it in the error (``'images[2]'``).

    Raises:
        ValueError: naming the array's shape and dtype.
    """
    if array.ndim == 3 and array.shape[2] == 3 and array.dtype == np.uint8 and array.size:
        return
    raise ValueError(f'{where}: got a {array.dtype} array of shape {tuple(array.shape)}; '
                     'Segmenter takes (H, W, 3) uint8 BGR arrays with pixels: convert it '
                     '(scale to 0..255, drop alpha, repeat a gray channel) or pass the '
                     'image file path')


def default_device() -> str:
    """``'cuda'`` where CUDA is available, else ``'cpu'``."""
    return 'cuda' if torch.cuda.is_available() else 'cpu'


class Segmenter:
    """A segmentor loaded for inference on image files or arrays.

    Example::

        seg = Segmenter('configs/smoke/...112x112.py', 'work_dirs/smoke/iter_300.pth')
        [result] = seg(['photo.jpg'])
        label = result.pred_sem_seg.data[0].numpy()  # (H, W) class ids
        print(seg.classes[label[0, 0]])

    Args:
        config: Config path or object.
        checkpoint: Checkpoint trained with this config: an mmengine file
            (``.pth``/``.safetensors``), a DeepSpeed folder, or a segmentor
            released with InternViT-6B. Every model weight must be in it, with
            the model's shape, and nothing else (see
            :func:`~mmseg_internvit.checkpoint.load_model_weights`).
        device: ``'cpu'``, ``'cuda'``, ``'cuda:1'``...; default CUDA if available.
        batch_size: Images per forward (images of different sizes are run in
            separate forwards).
        tile, stride, crop_batch, dtype, cfg_options, compile: See :func:`prepare_config`.
        tta: Flip and multi-scale test-time augmentation with the config's
            ``tta_model`` and ``tta_pipeline`` (as mmseg's ``tools/test.py --tta``).
        keep_probs: Add ``seg_probs`` (per-class probabilities, averaged over
            the TTA views) to every result: at the model's output resolution,
            or at the image size with ``tta``.

    Raises:
        CheckpointMismatchError: the checkpoint does not fit the config.
        FileNotFoundError: config or checkpoint missing.
        ValueError: the device cannot be used here, or the config's model is
            not an mmseg segmentor (see :func:`check_device`, :func:`check_segmentor`).
    """

    def __init__(self, config: Union[str, Config], checkpoint: str, device: Optional[str] = None,
                 batch_size: int = 1, tile: Optional[Sequence[int]] = None,
                 stride: Optional[Sequence[int]] = None, crop_batch: Optional[int] = None,
                 dtype: Optional[str] = None, tta: bool = False, keep_probs: bool = False,
                 cfg_options: Optional[dict] = None, compile: bool = False) -> None:
        register_all_modules()  # what a config's custom_imports would do
        if isinstance(config, (str, os.PathLike)) and not osp.isfile(config):
            raise FileNotFoundError(f'config {config} does not exist')
        if batch_size < 1:
            raise ValueError(f'batch_size must be >= 1, got {batch_size}')
        checkpoint = os.fspath(checkpoint)
        if '://' not in checkpoint and not osp.exists(checkpoint):
            raise FileNotFoundError(f'checkpoint {checkpoint} does not exist')
        # TTA averages the views' logits at the image size: only then are
        # full-size logits needed.
        self.device = device or default_device()
        check_device(self.device)
        self.cfg = prepare_config(str(config) if not isinstance(config, Config) else config,
                                  tile, stride, crop_batch, dtype, cfg_options, checkpoint,
                                  full_size_logits=tta, compile=compile)
        check_segmentor(self.cfg, config if not isinstance(config, Config) else 'the config')
        self.batch_size = batch_size
        self.tta = tta
        self.keep_probs = keep_probs
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')  # mmseg's deprecation chatter while building
            model = init_model(self.cfg, None, device='cpu')
        meta = load_model_weights(model, checkpoint)
        model.dataset_meta = dataset_meta(self.cfg, meta, model.decode_head.num_classes)
        self.model = model.to(self.device).eval()
        self.tta_model = None
        if tta:
            if 'tta_model' not in self.cfg:
                raise ValueError('--tta needs tta_model (and tta_pipeline) in the config')
            self.tta_model = MODELS.build(dict(self.cfg.tta_model, module=self.model)).eval()
        self.pipeline = build_pipeline(self.cfg, tta)

    @property
    def classes(self) -> Tuple[str, ...]:
        """Class names, indexed by class id."""
        return self.model.dataset_meta['classes']

    @property
    def palette(self) -> List[List[int]]:
        """RGB colour of every class, indexed by class id."""
        return self.model.dataset_meta['palette']

    def __call__(self, images: Sequence[ImageInput]) -> List[SegDataSample]:
        """Segment image files or ``(H, W, 3)`` uint8 BGR arrays, ``batch_size`` at a time.

        Returns:
            One ``SegDataSample`` per image with ``pred_sem_seg`` (``(1, H, W)``
            class ids at the image's size) and ``seg_logits`` (at the model's
            output resolution; at the image size with ``tta``).

        Raises:
            ValueError: an array is not ``(H, W, 3)`` uint8 with pixels.
            ImageReadError: a file cannot be read as an image.
        """
        for index, image in enumerate(images):
            if isinstance(image, np.ndarray):
                check_bgr_array(image, f'images[{index}]')
        arrays = [image if isinstance(image, np.ndarray) else read_image(os.fspath(image))
                  for image in images]
        results = []
        for start in range(0, len(arrays), self.batch_size):
            results += self.predict_batch(arrays[start:start + self.batch_size])
        return results

    def predict_batch(self, arrays: Sequence[np.ndarray]) -> List[SegDataSample]:
        """Segment BGR arrays; arrays that share a size share a forward."""
        items = [self.pipeline(dict(img=array)) for array in arrays]
        results = [None] * len(items)
        for indices in same_size_groups(items):
            data = pseudo_collate([items[i] for i in indices])
            with torch.no_grad():
                samples = self._tta_step(data) if self.tta else self.model.test_step(data)
            for i, sample in zip(indices, samples):
                if self.keep_probs and 'seg_probs' not in sample:
                    sample.seg_probs = PixelData(data=class_probabilities(sample.seg_logits.data))
                results[i] = sample
        return results

    def _tta_step(self, data: dict) -> List[SegDataSample]:
        # BaseTTAModel.test_step, keeping the views to average probabilities.
        views = [self.model.test_step({key: value[i] for key, value in data.items()})
                 for i in range(len(data['inputs']))]
        per_image = list(zip(*views))
        merged = self.tta_model.merge_preds(per_image)
        if self.keep_probs:
            for sample, samples in zip(merged, per_image):
                probs = sum(class_probabilities(s.seg_logits.data) for s in samples) / len(samples)
                sample.seg_probs = PixelData(data=probs)
        return merged


def same_size_groups(items: Sequence[dict]) -> List[List[int]]:
    """Indices of pipeline outputs whose ``inputs`` share a shape (one forward each)."""
    groups = {}
    for index, item in enumerate(items):
        inputs = item['inputs']
        shape = tuple(tuple(x.shape) for x in inputs) if isinstance(inputs, list) \
            else tuple(inputs.shape)
        groups.setdefault(shape, []).append(index)
    return list(groups.values())


def class_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """Per-class probabilities from a result's ``C x H x W`` ``seg_logits``.

    Softmax over classes; a one-channel head's ``seg_logits`` already hold its
    sigmoid (mmseg's ``postprocess_result`` stores them so, as does the
    model-resolution path), so they are returned as they are.
    """
    return logits.softmax(dim=0) if logits.shape[0] > 1 else logits
