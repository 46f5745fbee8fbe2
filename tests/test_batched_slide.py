"""BatchedSlideEncoderDecoder gives mmseg's sliding-window results, crops batched."""
import copy
import os

import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import PixelData

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMOKE = os.path.join(ROOT, 'configs', 'smoke',
                     'linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py')


@pytest.fixture(scope='module')
def segmentors():
    """mmseg's EncoderDecoder and ours, same random weights, smoke config (crop 112, stride 70)."""
    from mmseg_internvit import register_all_modules
    register_all_modules()
    from mmseg.registry import MODELS
    cfg = Config.fromfile(SMOKE)
    cfg.model.decode_head.num_classes = 8  # full-size logit maps of 150 classes are slow here
    init_default_scope('mmseg')
    torch.manual_seed(0)
    loop = MODELS.build(cfg.model).eval()
    with torch.no_grad():  # non-trivial BN statistics, so a mix-up of crops would show
        for name, buf in loop.named_buffers():
            if name.endswith('running_mean') or name.endswith('running_var'):
                buf.copy_(torch.rand_like(buf) + 0.5)
    batched_cfg = copy.deepcopy(cfg.model)
    batched_cfg.type = 'BatchedSlideEncoderDecoder'
    batched = MODELS.build(batched_cfg).eval()
    batched.load_state_dict(loop.state_dict())
    return loop, batched


def _metas(x):
    shape = x.shape[2:]
    return [dict(ori_shape=shape, img_shape=shape, pad_shape=shape, padding_size=[0] * 4)
            for _ in range(x.shape[0])]


@pytest.fixture(scope='module')
def mmseg_reference(segmentors):
    """mmseg's slide logits for a 2-image batch of each size (computed once per size)."""
    cache = {}

    def reference(size):
        if size not in cache:
            torch.manual_seed(1)
            x = torch.randn(2, 3, *size)
            with torch.no_grad():
                cache[size] = x, segmentors[0].slide_inference(x, _metas(x))
        return cache[size]
    return reference


@pytest.mark.parametrize('size', [(112, 112), (200, 150), (50, 90), (100, 300), (237, 181)])
@pytest.mark.parametrize('crop_batch', [1, 3, 8])
def test_equals_mmseg_slide_inference(segmentors, mmseg_reference, size, crop_batch):
    _, batched = segmentors
    batched.test_cfg.batch_size = crop_batch
    x, expected = mmseg_reference(size)
    with torch.no_grad():
        got = batched.slide_inference(x, _metas(x))
    assert got.shape == (2, 8, *size)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_predict_equals_mmseg_for_one_and_many_images(segmentors):
    from mmseg.structures import SegDataSample
    loop, batched = segmentors
    batched.test_cfg.batch_size = 8
    torch.manual_seed(2)
    for num_images in (1, 3):
        x = torch.randn(num_images, 3, 130, 250)
        samples = [SegDataSample(metainfo=m) for m in _metas(x)]
        with torch.no_grad():
            expected = loop.predict(x, copy.deepcopy(samples))
            got = batched.predict(x, copy.deepcopy(samples))
        for e, g in zip(expected, got):
            torch.testing.assert_close(g.seg_logits.data, e.seg_logits.data, rtol=1e-5, atol=1e-5)
            assert torch.equal(g.pred_sem_seg.data, e.pred_sem_seg.data)
            assert isinstance(g.pred_sem_seg, PixelData)


def test_crops_are_chunked_with_per_crop_img_shape(segmentors, monkeypatch):
    _, batched = segmentors
    batched.test_cfg.batch_size = 4
    calls = []
    real = type(batched).encode_decode

    def spy(self, inputs, metas):
        calls.append((tuple(inputs.shape), [m['img_shape'] for m in metas],
                      [m['ori_shape'] for m in metas]))
        return real(self, inputs, metas)

    monkeypatch.setattr(type(batched), 'encode_decode', spy)
    x = torch.randn(3, 3, 200, 150)  # 3 x 2 windows per image, 18 crops
    metas = _metas(x)
    metas[2]['ori_shape'] = (400, 300)  # tells the images apart in the calls
    with torch.no_grad():
        batched.slide_inference(x, metas)
    assert [c[0][0] for c in calls] == [4, 4, 4, 4, 2]
    for shape, img_shapes, _ in calls:
        assert shape[1:] == (3, 112, 112)
        assert all(tuple(s) == (112, 112) for s in img_shapes)
    ori = [o for _, _, oris in calls for o in oris]
    assert ori[12:] == [(400, 300)] * 6  # image-major order: image 2's six crops last
    assert tuple(metas[0]['img_shape']) == (200, 150)  # the caller's metas are not changed


def test_slide_windows_match_mmseg_positions():
    from mmseg_internvit.models.segmentors import slide_windows
    # 200 rows: starts 0, 70, then the last window is moved back to end at 200.
    assert slide_windows(200, 112, (112, 112), (70, 70)) == [(0, 112, 0, 112), (70, 182, 0, 112),
                                                             (88, 200, 0, 112)]
    assert slide_windows(50, 90, (112, 112), (70, 70)) == [(0, 50, 0, 90)]
    assert len(slide_windows(448, 448, (112, 112), (70, 70))) == 36  # 6 x 6


def test_bad_test_cfg_is_reported(segmentors):
    _, batched = segmentors
    x = torch.randn(1, 3, 120, 120)
    batched.test_cfg.batch_size = 0
    with pytest.raises(ValueError, match='batch_size .* got 0'):
        batched.slide_inference(x, _metas(x))
    batched.test_cfg.batch_size = 2
    batched.test_cfg.stride = (150, 150)
    x = torch.randn(1, 3, 300, 300)
    try:
        with pytest.raises(RuntimeError, match='uncovered'):
            batched.slide_inference(x, _metas(x))
    finally:
        batched.test_cfg.stride = (70, 70)


def test_prepare_config_switches_encoder_decoders():
    from mmseg_internvit.inference import prepare_config
    cfg = prepare_config(SMOKE, crop_batch=4)
    assert cfg.model.type == 'BatchedSlideEncoderDecoder'
    assert cfg.model.test_cfg.batch_size == 4 and cfg.model.backbone.init_cfg is None
    assert cfg.model.test_cfg.full_size_logits is True  # mmseg's results unless asked
    # Whole-image configs switch too (for the bounded-memory labels) but stay whole.
    whole = prepare_config(SMOKE, cfg_options={'model.test_cfg': dict(mode='whole')},
                           full_size_logits=False)
    assert whole.model.type == 'BatchedSlideEncoderDecoder'
    assert whole.model.test_cfg.mode == 'whole' and whole.model.test_cfg.full_size_logits is False
    tiled = prepare_config(whole, tile=(96, 64), dtype='bf16')
    assert tiled.model.type == 'BatchedSlideEncoderDecoder'
    assert tiled.model.test_cfg.crop_size == (96, 64) and tiled.model.test_cfg.stride == (64, 42)
    assert tiled.model.backbone.dtype == 'bfloat16'
    # An adapter's dtype is its ViT's; a backbone of another kind has none to set.
    adapter = prepare_config(SMOKE.replace('linear_internvit-tiny_', 'upernet_internvit-tiny-'
                                           'adapter_'), dtype='fp16')
    assert adapter.model.backbone.vit.dtype == 'float16' and 'dtype' not in adapter.model.backbone
    from mmseg.apis import init_model
    built = init_model(adapter, None, device='cpu')
    assert next(built.backbone.vit.parameters()).dtype == torch.float16
    with pytest.raises(ValueError, match="model.backbone is 'ResNetV1c'; drop --dtype"):
        prepare_config(SMOKE, dtype='fp16',
                       cfg_options={'model.backbone': dict(type='ResNetV1c', depth=18)})
    with pytest.raises(ValueError, match=r'stride \(100, 100\) is larger than tile \(64, 64\)'):
        prepare_config(SMOKE, tile=(64, 64), stride=(100, 100))


@pytest.mark.parametrize('align_corners', [False, True])
@pytest.mark.parametrize('size', [(7, 5), (300, 451), (33, 1000), (1, 1)])
def test_banded_label_equals_full_size_argmax(size, align_corners):
    """Row bands (tiny bands here, to cross many band edges) give mmseg's full-size labels."""
    from mmseg.models.utils import resize

    from mmseg_internvit.models.segmentors.banded_resize import banded_label
    torch.manual_seed(0)
    logits = torch.randn(6, 23, 31)
    full = resize(logits[None], size=size, mode='bilinear', align_corners=align_corners)[0]
    got = banded_label(logits, size, align_corners, band_bytes=6 * size[1] * 4 * 3)
    assert got.shape == (1, *size) and got.dtype == torch.long
    assert torch.equal(got[0], full.argmax(0))
    binary = banded_label(logits[:1], size, align_corners, threshold=0.3, band_bytes=1)
    assert torch.equal(binary[0], (full[:1].sigmoid() > 0.3).float()[0])


def test_predict_without_full_size_logits(segmentors):
    """Same labels as mmseg's predict; logits kept at the model's resolution, flips undone."""
    from mmseg.structures import SegDataSample
    loop, batched = segmentors
    torch.manual_seed(3)
    x = torch.randn(2, 3, 130, 250)
    metas = [dict(m, ori_shape=(391, 747), padding_size=[0, 6, 0, 4]) for m in _metas(x)]
    metas[1].update(flip=True, flip_direction='horizontal')
    samples = [SegDataSample(metainfo=m) for m in metas]
    batched.test_cfg.full_size_logits = False
    try:
        with torch.no_grad():
            expected = loop.predict(x, copy.deepcopy(samples))
            got = batched.predict(x, copy.deepcopy(samples))
    finally:
        batched.test_cfg.full_size_logits = True
    for e, g in zip(expected, got):
        assert torch.equal(g.pred_sem_seg.data, e.pred_sem_seg.data)
        assert g.seg_logits.data.shape == (8, 126, 244)
    with torch.no_grad():
        raw = loop.slide_inference(x, _metas(x))
    torch.testing.assert_close(got[0].seg_logits.data, raw[0, :, :126, :244])
    torch.testing.assert_close(got[1].seg_logits.data, raw[1, :, :126, :244].flip(2))
