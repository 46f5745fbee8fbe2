"""mmseg's sliding-window loop against :class:`BatchedSlideEncoderDecoder`, one model.

Every segmentor gets the same (random) weights and the same input; their runs
are interleaved (:func:`~.measure.time_interleaved`), so load from other
processes hits them alike, and the best and median times are compared. The
largest logit difference from mmseg's loop is reported too, as a check that
they agree. Needs mmseg (unlike the backbone benchmarks).
"""
from typing import Dict, List, Sequence, Tuple

import torch

from .measure import time_interleaved

REFERENCE = 'mmseg loop'


def build_slide_segmentors(config: str, crop_batches: Sequence[int],
                           device: str) -> Dict[str, torch.nn.Module]:
    """mmseg's EncoderDecoder and one batched segmentor per crop batch, same weights."""
    from mmengine.config import Config, ConfigDict
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmseg_internvit import register_all_modules
    from mmseg_internvit.models.backbones.vit_config import drop_pretrained
    register_all_modules()
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    # No checkpoint anywhere: an InternViT with one configured leaves its
    # weights unwritten until init_weights() loads it, so clear it (an
    # adapter's ViT's too).
    drop_pretrained(cfg.model.backbone)
    cfg.model.test_cfg.mode = 'slide'
    # Random weights as built (init_weights() would only add log output).
    models = {REFERENCE: MODELS.build(dict(cfg.model, type='EncoderDecoder'))}
    for n in crop_batches:
        models[f'batched, {n} crops/forward'] = MODELS.build(dict(
            cfg.model, type='BatchedSlideEncoderDecoder',
            test_cfg=ConfigDict(cfg.model.test_cfg, batch_size=n)))
    state = models[REFERENCE].state_dict()
    for model in models.values():
        model.load_state_dict(state)
        model.to(device).eval()
    return models


def compare_slide(config: str, size: Tuple[int, int], crop_batches: Sequence[int],
                  images: int, warmup: int, repeats: int, device: str) -> List[dict]:
    """Time every segmentor's ``slide_inference`` on one random batch.

    Returns:
        One record per segmentor: name, best and median seconds, speed-ups
        over mmseg's loop, and the largest absolute logit difference from it.
    """
    models = build_slide_segmentors(config, crop_batches, device)
    image = torch.randn(images, 3, *size, device=device)
    metas = [dict(ori_shape=tuple(size), img_shape=tuple(size), pad_shape=tuple(size))
             for _ in range(images)]
    with torch.no_grad():
        outputs = {name: model.slide_inference(image, [dict(m) for m in metas])
                   for name, model in models.items()}
        steps = {name: (lambda model=model: model.slide_inference(image, [dict(m) for m in metas]))
                 for name, model in models.items()}
        stats = time_interleaved(steps, torch.device(device), warmup, repeats)
    base = stats[REFERENCE]
    return [dict(name=name, min_s=s.min, median_s=s.median,
                 speedup_min=base.min / s.min, speedup_median=base.median / s.median,
                 max_abs_diff=(outputs[name] - outputs[REFERENCE]).abs().max().item())
            for name, s in stats.items()]


def format_slide(records: List[dict]) -> str:
    """A text table of :func:`compare_slide`'s records."""
    lines = []
    for r in records:
        lines.append(f"{r['name']:<26} min {r['min_s']:7.3f} s  median {r['median_s']:7.3f} s  "
                     f"speed-up min {r['speedup_min']:5.2f}x median {r['speedup_median']:5.2f}x  "
                     f"max |diff| {r['max_abs_diff']:.1e}")
    return '\n'.join(lines)
