"""ShortSideResize + ResizeToMultiple reproduce upstream InternViT's evaluation resize."""
import math
import os

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ADE20K_BASE = os.path.join(ROOT, 'configs', '_base_', 'datasets', 'ade20k_504x504.py')
SMOKE = os.path.join(ROOT, 'configs', 'smoke',
                     'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')
FEW_SHOT_1_16 = os.path.join(ROOT, 'configs', 'internvit_6b',
                             'linear_internvit-6b-fewshot-1-16_8xb2-5k_ade20k-504x504.py')


def upstream_sizes(height, width, img_scale=(2016, 504), crop=504, divisor=14):
    """Reference: upstream's (height, width) after SETR_Resize, then after ResizeToMultiple.

    Facts from the upstream configs and mmseg 0.30 / mmcv 1.x:
    - MultiScaleFlipAug(img_scale) hands the resize the scale ``img_scale``;
      with setr_multi_scale the short-side target is that scale's short side,
      raised to the crop size if below it; the long-side target is that short
      target times the image's aspect ratio (no cap).
    - mmcv's imrescale turns the (long, short) target into one factor, the
      smaller of long_target / long_side and short_target / short_side, and
      rounds each side as int(side * factor + 0.5).
    - ResizeToMultiple resizes each side up to the next multiple of the divisor.
    """
    short_target = max(min(img_scale), crop)
    long_side, short_side = max(height, width), min(height, width)
    long_target = short_target * long_side / short_side
    factor = min(long_target / long_side, short_target / short_side)
    resized = (int(height * factor + 0.5), int(width * factor + 0.5))
    return resized, tuple(math.ceil(s / divisor) * divisor for s in resized)


# (height, width): exact 504, odd, portrait / landscape, tiny, huge, the 2016 x 504
# extremes and beyond them, and sizes whose long side lands on .5 before rounding.
SIZES = [(504, 504), (505, 505), (375, 500), (500, 375), (511, 683), (683, 511),
         (1, 1), (3, 7), (7, 3), (13, 31), (504, 2016), (2016, 504), (503, 2017),
         (2017, 503), (100, 1000), (1000, 100), (3000, 4000), (4321, 2469),
         (16, 17), (80, 85), (17, 16), (85, 80), (234, 345), (40, 3)]


def build(cfg):
    from mmseg_internvit import register_all_modules
    register_all_modules()
    from mmseg.registry import TRANSFORMS
    return TRANSFORMS.build(cfg)


def random_image(height, width, channels=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, channels), np.uint8)


@pytest.mark.parametrize('height,width', SIZES)
def test_sizes_match_upstream_rule(height, width):
    resize = build(dict(type='ShortSideResize', short_side=504))
    to_multiple = build(dict(type='ResizeToMultiple', size_divisor=14))
    (h1, w1), (h2, w2) = upstream_sizes(height, width)
    assert min(h1, w1) == 504
    img = random_image(height, width)
    out = resize(dict(img=img))
    assert out['img'].shape == (h1, w1, 3) and tuple(out['img_shape']) == (h1, w1)
    assert out['scale_factor'] == pytest.approx((w1 / width, h1 / height))
    # Same interpolation as mmcv's imrescale: cv2 bilinear on the uint8 image.
    np.testing.assert_array_equal(out['img'],
                                  cv2.resize(img, (w1, h1), interpolation=cv2.INTER_LINEAR))
    first = out['img']
    out = to_multiple(out)
    assert out['img'].shape == (h2, w2, 3) and tuple(out['img_shape']) == (h2, w2)
    np.testing.assert_array_equal(out['img'],
                                  cv2.resize(first, (w2, h2), interpolation=cv2.INTER_LINEAR))


def test_size_rule_on_a_dense_grid():
    """Sizes only (no pixels): every side length pair from 1 to 4000 on a coarse grid."""
    from mmseg_internvit.datasets.short_side_resize import short_side_size
    sides = sorted({*range(1, 60), *range(60, 4000, 37), 504, 1008, 2016, 2017})
    for height in sides:
        for width in sides:
            assert short_side_size(width, height, 504)[::-1] == upstream_sizes(height, width)[0]


def test_half_pixel_long_sides_round_up():
    # 504 * 17 / 16 = 535.5: mmcv rounds half up, so both orientations give 536.
    assert upstream_sizes(16, 17)[0] == (504, 536)
    assert upstream_sizes(85, 80)[0] == (536, 504)
    assert upstream_sizes(16, 17)[1] == (504, 546)


def test_long_side_is_not_capped_unlike_mmseg_resize():
    """Above 4:1 the SETR rule and mmseg's Resize(2016, 504) differ: no 2016 cap here."""
    img = random_image(100, 1000)
    ours = build(dict(type='ShortSideResize', short_side=504))(dict(img=img))
    capped = build(dict(type='Resize', scale=(2016, 504), keep_ratio=True))(dict(img=img))
    assert ours['img'].shape[:2] == (504, 5040)
    assert capped['img'].shape[:2] == (202, 2016)
    # At or below 4:1 they agree.
    img = random_image(375, 500)
    ours = build(dict(type='ShortSideResize', short_side=504))(dict(img=img))
    capped = build(dict(type='Resize', scale=(2016, 504), keep_ratio=True))(dict(img=img))
    np.testing.assert_array_equal(ours['img'], capped['img'])


def test_label_loaded_before_is_resized_nearest():
    label = np.random.default_rng(1).integers(0, 150, (61, 83), np.uint8)
    out = build(dict(type='ShortSideResize', short_side=504))(
        dict(img=random_image(61, 83), gt_seg_map=label))
    (h, w), _ = upstream_sizes(61, 83)
    assert out['gt_seg_map'].shape == (h, w)
    np.testing.assert_array_equal(out['gt_seg_map'],
                                  cv2.resize(label, (w, h), interpolation=cv2.INTER_NEAREST))


@pytest.mark.parametrize('bad', [0, -504, 504.0, '504', True, None])
def test_bad_short_side_is_a_clear_error(bad):
    with pytest.raises(ValueError, match=r'short_side must be a positive int, got'):
        build(dict(type='ShortSideResize', short_side=bad))


def write_pair(folder, height, width):
    """One ADE20K-style image + label (values 1..150, 0 = ignore) written to disk."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(height * 7 + width)
    img_path, seg_path = os.path.join(folder, 'x.jpg'), os.path.join(folder, 'x.png')
    Image.fromarray(rng.integers(0, 256, (height, width, 3), np.uint8)).save(img_path)
    Image.fromarray(rng.integers(0, 151, (height, width), np.uint8)).save(seg_path)
    return dict(img_path=img_path, seg_map_path=seg_path, reduce_zero_label=True,
                seg_fields=[])


def compose(steps):
    from mmseg_internvit import register_all_modules
    register_all_modules()
    from mmcv.transforms import Compose
    from mmengine.registry import init_default_scope
    init_default_scope('mmseg')
    return Compose(steps)


def test_ade20k_test_pipeline_resizes_image_and_keeps_label_at_original_size(tmp_path):
    cfg = Config.fromfile(ADE20K_BASE)
    assert cfg.val_dataloader.dataset.pipeline == cfg.test_dataloader.dataset.pipeline
    pipeline = compose(cfg.test_pipeline)
    out = pipeline(write_pair(str(tmp_path), 343, 611))
    _, (h, w) = upstream_sizes(343, 611)
    assert (h, w) == (504, 910)
    assert tuple(out['inputs'].shape) == (3, h, w)
    sample = out['data_samples']
    assert tuple(sample.gt_sem_seg.data.shape) == (1, 343, 611)
    assert tuple(sample.ori_shape) == (343, 611) and tuple(sample.img_shape) == (h, w)


def test_few_shot_subsets_evaluate_as_upstream_subset_configs(tmp_path):
    """Upstream's 1/16..1/2 configs cap the long side at 2016 (mmseg Resize), then a multiple
    of 14."""
    cfg = Config.fromfile(FEW_SHOT_1_16)
    pipeline = compose(cfg.test_dataloader.dataset.pipeline)
    out = pipeline(write_pair(str(tmp_path / 'wide'), 60, 700))
    # factor min(2016 / 700, 504 / 60) = 2.88: 173 x 2016, then 182 x 2016.
    assert tuple(out['inputs'].shape) == (3, 182, 2016)
    out = pipeline(write_pair(str(tmp_path / 'usual'), 343, 611))
    assert tuple(out['inputs'].shape) == (3, 504, 910)


def test_tta_pipeline_scales_flips_and_keeps_label(tmp_path):
    cfg = Config.fromfile(ADE20K_BASE)
    out = compose(cfg.tta_pipeline)(write_pair(str(tmp_path), 343, 611))
    shapes = [tuple(x.shape) for x in out['inputs']]
    expected = []
    for short in (504, 630, 756, 882):
        (h, w), multiple = upstream_sizes(343, 611, img_scale=(4 * short, short))
        expected += [(3, *multiple)] * 2  # no flip, flip
    assert shapes == expected
    assert [s.flip for s in out['data_samples']] == [False, True] * 4
    assert all(tuple(s.gt_sem_seg.data.shape) == (1, 343, 611) for s in out['data_samples'])
    # A flipped input is the mirror of the unflipped one.
    torch.testing.assert_close(out['inputs'][1], out['inputs'][0].flip(-1))


def test_prediction_comes_back_at_original_size_for_the_metric(sample_ade20k):
    """Through the smoke model: inputs resized up to multiples of 14, prediction and
    label at the image's own size, so IoUMetric compares like with like."""
    from mmseg_internvit import register_all_modules
    register_all_modules()
    from mmengine.registry import init_default_scope
    from mmseg.evaluation import IoUMetric
    from mmseg.registry import DATASETS, MODELS
    cfg = Config.fromfile(SMOKE)
    init_default_scope('mmseg')
    dataset_cfg = cfg.val_dataloader.dataset
    dataset_cfg.data_root = sample_ade20k
    dataset = DATASETS.build(dataset_cfg)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    model.eval()
    metric = IoUMetric(iou_metrics=['mIoU'])
    metric.dataset_meta = dataset.metainfo
    for index in range(3):
        item = dataset[index]
        height, width = item['data_samples'].ori_shape
        (h, w), multiple = upstream_sizes(height, width, img_scale=(512, 128), crop=128)
        assert tuple(item['inputs'].shape[1:]) == multiple
        with torch.no_grad():
            [result] = model.test_step(dict(inputs=[item['inputs']],
                                            data_samples=[item['data_samples']]))
        assert tuple(result.pred_sem_seg.data.shape) == (1, height, width)
        assert tuple(result.gt_sem_seg.data.shape) == (1, height, width)
        metric.process([], [result.to_dict()])
    assert len(metric.results) == 3
