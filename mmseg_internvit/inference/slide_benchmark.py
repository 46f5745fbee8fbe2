"""Time mmseg's sliding-window loop against BatchedSlideEncoderDecoder on one model.

    python -m mmseg_internvit.inference.slide_benchmark CONFIG [--size 448 448]
        [--crop-batch 1 8] [--images 1] [--repeats 5] [--device cpu]

All segmentors get the same (random) weights and the same input; their runs
are interleaved, so load from other processes hits them alike, and the best
(min) and median times are compared. The largest logit difference from
mmseg's loop is printed too, as a check that they agree.
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List

import torch
from mmengine.config import Config, ConfigDict
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

import mmseg_internvit  # noqa: F401  (registers BatchedSlideEncoderDecoder)


def _timed(fn: Callable[[], torch.Tensor], device: str) -> float:
    start = time.perf_counter()
    fn()
    if device.startswith('cuda'):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main(argv: List[str] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--size', type=int, nargs=2, default=(448, 448), metavar=('H', 'W'))
    parser.add_argument('--crop-batch', type=int, nargs='+', default=[1, 8],
                        help='crops per forward of the batched segmentor(s)')
    parser.add_argument('--images', type=int, default=1, help='images per batch')
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    args = parser.parse_args(argv)

    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    cfg.model.backbone.init_cfg = None
    cfg.model.test_cfg.mode = 'slide'
    torch.manual_seed(0)
    # Random weights as built (init_weights() would only add log output).
    models = {'mmseg loop': MODELS.build(dict(cfg.model, type='EncoderDecoder'))}
    for n in args.crop_batch:
        models[f'batched, {n} crops/forward'] = MODELS.build(dict(
            cfg.model, type='BatchedSlideEncoderDecoder',
            test_cfg=ConfigDict(cfg.model.test_cfg, batch_size=n)))
    state = models['mmseg loop'].state_dict()
    for model in models.values():
        model.load_state_dict(state)
        model.to(args.device).eval()
    image = torch.randn(args.images, 3, *args.size, device=args.device)
    metas = [dict(ori_shape=args.size, img_shape=args.size, pad_shape=args.size)
             for _ in range(args.images)]
    times: Dict[str, List[float]] = {name: [] for name in models}
    diffs = {}
    with torch.no_grad():
        reference = models['mmseg loop'].slide_inference(image, [dict(m) for m in metas])
        for name, model in models.items():  # also the warm-up
            diffs[name] = (model.slide_inference(image, [dict(m) for m in metas]) -
                           reference).abs().max().item()
        for _ in range(args.repeats):
            for name, model in models.items():
                times[name].append(_timed(lambda: model.slide_inference(image, metas),
                                          args.device))
    crop, stride = cfg.model.test_cfg.crop_size, cfg.model.test_cfg.stride
    print(f'{args.images} x {args.size[0]}x{args.size[1]} image(s), crop {tuple(crop)}, '
          f'stride {tuple(stride)}, {cfg.model.decode_head.num_classes} classes, '
          f'{args.device}, {torch.get_num_threads()} threads, torch {torch.__version__}, '
          f'{args.repeats} repeats')
    base_min, base_med = min(times['mmseg loop']), statistics.median(times['mmseg loop'])
    for name, runs in times.items():
        best, med = min(runs), statistics.median(runs)
        print(f'{name:<26} min {best:7.3f} s  median {med:7.3f} s  speed-up min '
              f'{base_min / best:5.2f}x median {base_med / med:5.2f}x  '
              f'max |diff| {diffs[name]:.1e}')


if __name__ == '__main__':
    main()
