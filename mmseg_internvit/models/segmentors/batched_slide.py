"""Sliding-window inference that batches crops across windows and images."""
from typing import Callable, List, Optional, Tuple

import torch
from mmengine.structures import PixelData
from mmseg.models.segmentors import EncoderDecoder
from mmseg.utils import OptSampleList, SampleList
from torch import Tensor

from mmseg_internvit.registry import MODELS
from .banded_resize import banded_label

Window = Tuple[int, int, int, int]  # y1, y2, x1, x2
EncodeFn = Callable[[Tensor, List[dict]], Tensor]  # (crops, metas) -> logits


def slide_windows(height: int, width: int, crop_size: Tuple[int, int],
                  stride: Tuple[int, int]) -> List[Window]:
    """Crop boxes of mmseg's sliding-window inference, in its order (rows, then columns).

    The last row and column are shifted back to end at the image border; an
    image smaller than the crop gives one window covering the whole image
    (crops are never padded).
    """
    h_crop, w_crop = crop_size
    h_stride, w_stride = stride
    h_grids = max(height - h_crop + h_stride - 1, 0) // h_stride + 1
    w_grids = max(width - w_crop + w_stride - 1, 0) // w_stride + 1
    windows = []
    for h_idx in range(h_grids):
        for w_idx in range(w_grids):
            y2 = min(h_idx * h_stride + h_crop, height)
            x2 = min(w_idx * w_stride + w_crop, width)
            windows.append((max(y2 - h_crop, 0), y2, max(x2 - w_crop, 0), x2))
    return windows


@MODELS.register_module()
class BatchedSlideEncoderDecoder(EncoderDecoder):
    """``EncoderDecoder`` whose slide inference runs several crops per forward.

    mmseg's ``slide_inference`` calls ``encode_decode`` once per window
    position with one crop per image. Here the crops of all images and all
    windows are queued (image by image, windows in mmseg's order) and run in
    chunks of ``test_cfg.batch_size`` crops, which keeps a GPU busy on large
    images. Crop positions, unpadded crops, the per-crop ``img_shape`` and the
    averaging over overlaps are mmseg's, so the result equals mmseg's up to
    the floating-point effects of a different batch size in the network.

    Memory: the logits are summed straight into the slice of the output that
    belongs to the crop's image, so the only full-resolution tensors are the
    returned logits, ``num_classes x H x W`` float32 per image (150 classes at
    2048 x 512: 630 MB), and one ``H x W`` count map shared by the batch. mmseg's
    loop also builds a zero-padded full-size copy of every crop's logits for
    the whole batch. For huge images run one image per forward; the test
    pipeline's ``Resize`` bounds ``H x W`` (logits are resized to the original
    size only afterwards, in ``postprocess_result``).

    Photos larger than the model's input: with ``test_cfg.full_size_logits``
    False (``Segmenter`` sets it), labels at the original size are computed in
    row bands (:func:`banded_label`) and ``seg_logits`` stays at the model's
    resolution (padding removed, flips undone), so memory no longer grows with
    ``num_classes x`` the photo's pixels. The default (True) is mmseg's
    behaviour: full-size ``seg_logits``.

    Args:
        **kwargs: As for :class:`mmseg.models.segmentors.EncoderDecoder`.
            ``test_cfg`` may add ``batch_size`` (crops per forward, default 1)
            and ``full_size_logits`` (default True).
    """

    def slide_inference(self, inputs: Tensor, batch_img_metas: List[dict]) -> Tensor:
        """Sliding-window logits ``(N, num_classes, H, W)`` of a padded batch."""
        return slide_logits(inputs, batch_img_metas, self.encode_decode,
                            tuple(self.test_cfg.crop_size), tuple(self.test_cfg.stride),
                            self.test_cfg.get('batch_size', 1), self.out_channels)

    def postprocess_result(self, seg_logits: Tensor,
                           data_samples: OptSampleList = None) -> SampleList:
        """mmseg's results; labels computed in bands unless ``full_size_logits``."""
        if self.test_cfg.get('full_size_logits', True) or data_samples is None:
            return super().postprocess_result(seg_logits, data_samples)
        return results_at_model_resolution(seg_logits, data_samples, self.align_corners,
                                           getattr(self.decode_head, 'threshold', None))


def slide_logits(inputs: Tensor, batch_img_metas: List[dict], encode: EncodeFn,
                 crop_size: Tuple[int, int], stride: Tuple[int, int],
                 crops_per_forward: int, num_classes: int) -> Tensor:
    """Sliding-window logits ``(N, num_classes, H, W)``, crops batched across windows.

    The loop of :class:`BatchedSlideEncoderDecoder`, free so that any crop
    encoder (e.g. an ONNX session) gets mmseg's windows and averaging.

    Args:
        inputs: Normalised, padded batch ``(N, 3, H, W)``.
        batch_img_metas: One meta dict per image (``img_shape`` is set per crop).
        encode: ``encode(crops, metas)`` -> logits ``(n, num_classes, h, w)`` at
            the crops' size (``EncoderDecoder.encode_decode``).
        crop_size, stride: Window size and stride ``(h, w)``.
        crops_per_forward: Crops per ``encode`` call.
        num_classes: Channels of the logits.
    """
    if not isinstance(crops_per_forward, int) or crops_per_forward < 1:
        raise ValueError(f'test_cfg.batch_size (crops per forward) must be a positive '
                         f'int, got {crops_per_forward!r}')
    num_images, _, height, width = inputs.shape
    windows = slide_windows(height, width, crop_size, stride)
    # Every image of the batch has the same size, hence the same windows.
    count = inputs.new_zeros((1, height, width))
    for y1, y2, x1, x2 in windows:
        count[:, y1:y2, x1:x2] += 1
    if (count == 0).any():
        raise RuntimeError(f'sliding windows (crop {crop_size}, stride {stride}) leave '
                           f'pixels of a {height}x{width} image uncovered: the stride '
                           'must not exceed the crop size')
    seg_logits = inputs.new_zeros((num_images, num_classes, height, width))
    queue = [(i, window) for i in range(num_images) for window in windows]
    for start in range(0, len(queue), crops_per_forward):
        chunk = queue[start:start + crops_per_forward]
        crops = torch.cat([inputs[i:i + 1, :, y1:y2, x1:x2]
                           for i, (y1, y2, x1, x2) in chunk])
        # All crops share one shape (a crop is never larger than the image).
        metas = [{**batch_img_metas[i], 'img_shape': crops.shape[2:]} for i, _ in chunk]
        crop_logits = encode(crops, metas)
        for (i, (y1, y2, x1, x2)), logits in zip(chunk, crop_logits):
            seg_logits[i, :, y1:y2, x1:x2] += logits
    return seg_logits.div_(count)


def results_at_model_resolution(seg_logits: Tensor, data_samples: SampleList,
                                align_corners: bool,
                                threshold: Optional[float] = None) -> SampleList:
    """Fill ``data_samples`` with labels at the original size, computed in row bands,
    and ``seg_logits`` at the model's resolution (padding removed, flips undone).

    Args:
        seg_logits: Logits ``(N, C, H, W)`` of the padded batch.
        data_samples: One sample per image (its metainfo gives padding, flip
            and ``ori_shape``); changed in place and returned.
        align_corners: The decode head's.
        threshold: The decode head's, for one-channel (binary) heads.
    """
    for logits, sample in zip(seg_logits, data_samples):
        logits = _model_resolution(logits, sample.metainfo)
        label = banded_label(logits, sample.metainfo['ori_shape'], align_corners, threshold)
        if logits.shape[0] == 1:
            logits = logits.sigmoid()  # what mmseg keeps for one-channel heads
        sample.set_data({'seg_logits': PixelData(data=logits),
                         'pred_sem_seg': PixelData(data=label)})
    return data_samples


def _model_resolution(logits: Tensor, meta: dict) -> Tensor:
    """``C x h x w`` logits without padding and flips (as mmseg's postprocess)."""
    left, right, top, bottom = meta.get('img_padding_size', meta.get('padding_size', [0] * 4))
    height, width = logits.shape[1:]
    logits = logits[:, top:height - bottom, left:width - right]
    if meta.get('flip'):
        direction = meta.get('flip_direction')
        if direction not in ('horizontal', 'vertical'):
            raise ValueError(f'unknown flip_direction {direction!r} in the image metadata')
        logits = logits.flip(dims=(2,) if direction == 'horizontal' else (1,))
    return logits
