"""Class labels at the original image size without full-size logits.

mmseg resizes the ``num_classes x h x w`` logits of the model to the original
image size and takes the argmax there: 150 float32 maps of a 24-megapixel
photo are 14.4 GB, although the model saw a few hundred pixels a side.
Bilinear resizing is separable, so the same labels can be computed a band of
output rows at a time: each band needs only the two source rows around each
of its rows, then a width-only ``F.interpolate`` that uses the very source
positions the full-size resize would.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

BAND_BYTES = 64 << 20  # float32 logits per band: bounds the peak, not the result


def _source_rows(out_size: int, in_size: int, align_corners: bool,
                 device: torch.device) -> Tuple[Tensor, Tensor, Tensor]:
    """Source rows ``(i0, i1)`` and weight of ``i1`` for each output row (torch's rule)."""
    dst = torch.arange(out_size, dtype=torch.float32, device=device)
    if align_corners:
        scale = (in_size - 1) / (out_size - 1) if out_size > 1 else 0.0
        src = dst * scale
    else:
        src = ((dst + 0.5) * (in_size / out_size) - 0.5).clamp(min=0)
    i0 = src.floor().long().clamp(max=in_size - 1)
    i1 = (i0 + 1).clamp(max=in_size - 1)
    return i0, i1, src - i0


def banded_label(logits: Tensor, size: Tuple[int, int], align_corners: bool = False,
                 threshold: Optional[float] = None, band_bytes: int = BAND_BYTES) -> Tensor:
    """Labels of ``logits`` (``C x h x w``) bilinearly resized to ``size``.

    Equal to ``resize(logits, size, 'bilinear').argmax(0)`` (or the sigmoid
    threshold for one channel) up to float rounding, with peak memory of one
    band of ``band_bytes`` instead of ``C x H x W`` float32.

    Args:
        logits: Class logits at the model's resolution.
        size: Output ``(H, W)``.
        align_corners: As the decode head's.
        threshold: For one-channel (binary) heads: label 1 where
            ``sigmoid > threshold``; the result is then float, as mmseg's.
        band_bytes: Bytes of float32 logits resized at once.

    Returns:
        ``(1, H, W)``: int64 class ids, or float 0/1 for one-channel heads.
    """
    channels, height, width = logits.shape
    out_h, out_w = size
    i0, i1, weight = _source_rows(out_h, height, align_corners, logits.device)
    rows_per_band = max(1, band_bytes // max(1, channels * out_w * 4))
    binary = channels == 1
    label = torch.empty((1, out_h, out_w), device=logits.device,
                        dtype=logits.dtype if binary else torch.long)
    for start in range(0, out_h, rows_per_band):
        stop = min(start + rows_per_band, out_h)
        top, bottom = logits[:, i0[start:stop]], logits[:, i1[start:stop]]
        band = torch.lerp(top, bottom, weight[start:stop, None].to(logits.dtype))
        # Channels-last: torch's vectorised bilinear kernel and a contiguous
        # argmax over classes, about twice as fast as channels-first on a CPU.
        band = band[None].contiguous(memory_format=torch.channels_last)
        band = F.interpolate(band, size=(stop - start, out_w), mode='bilinear',
                             align_corners=align_corners)[0]
        if binary:
            label[:, start:stop] = (band.sigmoid() > threshold).to(label.dtype)
        else:
            label[0, start:stop] = band.argmax(dim=0)
    return label
