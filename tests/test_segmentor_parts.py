"""LinearProbeHead, SimpleFPN, the layer-decay constructor and frozen-step memory."""
import pytest
import torch
from mmengine.optim import build_optim_wrapper

from conftest import TINY_6B_STYLE

NUM_CLASSES = 5


def build_segmentor(frozen=True, neck=False, dtype='float32'):
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS

    from mmseg_internvit import register_all_modules

    register_all_modules()
    init_default_scope('mmseg')
    backbone = dict(type='InternViT', arch=TINY_6B_STYLE, out_indices=[-1], frozen=frozen,
                    dtype=dtype)
    if neck:
        extra = dict(neck=dict(type='SimpleFPN', in_channels=64, num_inputs=1),
                     decode_head=dict(type='UPerHead', in_channels=[64] * 4, in_index=[0, 1, 2, 3],
                                      channels=16, num_classes=NUM_CLASSES,
                                      norm_cfg=dict(type='BN')))
    else:
        extra = dict(decode_head=dict(type='LinearProbeHead', in_channels=64,
                                      num_classes=NUM_CLASSES, norm_cfg=dict(type='BN')))
    model = MODELS.build(dict(
        type='EncoderDecoder',
        data_preprocessor=dict(type='SegDataPreProcessor', mean=[0, 0, 0], std=[1, 1, 1]),
        backbone=backbone, **extra))
    model.init_weights()
    return model


def _batch(size=56, batch=2):
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    imgs = torch.randn(batch, 3, size, size)
    samples = []
    for _ in range(batch):
        s = SegDataSample()
        s.gt_sem_seg = PixelData(data=torch.randint(0, NUM_CLASSES, (1, size, size)))
        s.set_metainfo(dict(img_shape=(size, size), pad_shape=(size, size),
                            ori_shape=(size, size)))
        samples.append(s)
    return imgs, samples


def test_linear_probe_head_shape_and_param_count():
    model = build_segmentor()
    head = model.decode_head
    assert sum(p.numel() for p in head.parameters()) == 64 * NUM_CLASSES + NUM_CLASSES + 2 * 64
    logits = head([torch.randn(2, 64, 4, 5)])
    assert logits.shape == (2, NUM_CLASSES, 4, 5)
    from mmseg_internvit.models.heads import LinearProbeHead
    with pytest.raises(ValueError, match='channels \\(32\\) must equal in_channels \\(64\\)'):
        LinearProbeHead(in_channels=64, channels=32, num_classes=3)


def test_simple_fpn_levels():
    from mmseg_internvit.models import SimpleFPN
    fpn = SimpleFPN(in_channels=8, num_inputs=4)
    outs = fpn([torch.randn(1, 8, 6, 7)] * 4)
    assert [o.shape[-2:] for o in outs] == [(24, 28), (12, 14), (6, 7), (3, 3)]
    det = SimpleFPN(in_channels=8, num_inputs=1, out_channels=4, extra_pool=True)
    outs = det([torch.randn(1, 8, 6, 6)])
    assert [tuple(o.shape) for o in outs] == [(1, 4, 24, 24), (1, 4, 12, 12), (1, 4, 6, 6),
                                              (1, 4, 3, 3), (1, 4, 2, 2)]
    with pytest.raises(ValueError, match='built for 4 inputs but got 2'):
        fpn([torch.randn(1, 8, 6, 7)] * 2)


def _saved_bytes(fn):
    """Bytes of the tensors autograd keeps for backward while running ``fn``."""
    total = [0]

    def pack(t):
        total[0] += t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        losses = fn()
    sum(losses.values()).backward()
    return total[0]


def test_frozen_step_trains_head_only_and_keeps_no_backbone_activations():
    imgs, samples = _batch()
    frozen, trained = build_segmentor(frozen=True), build_segmentor(frozen=False)
    frozen.train()
    trained.train()
    frozen_bytes = _saved_bytes(lambda: frozen.loss(imgs, samples))
    trained_bytes = _saved_bytes(lambda: trained.loss(imgs, samples))
    assert all(p.grad is None for p in frozen.backbone.parameters())
    assert all(p.grad is not None for p in frozen.decode_head.parameters())
    # A frozen step keeps exactly what the head alone keeps: no backbone activations.
    feats = [f.detach() for f in frozen.extract_feat(imgs)]
    head_bytes = _saved_bytes(lambda: frozen.decode_head.loss(feats, samples, frozen.train_cfg))
    assert frozen_bytes == head_bytes
    assert trained_bytes > 2 * frozen_bytes


def test_bf16_backbone_feeds_fp32_head():
    model = build_segmentor(dtype='bfloat16')
    feats = model.extract_feat(torch.randn(1, 3, 56, 56))
    assert feats[0].dtype == torch.float32
    assert model.backbone.blocks[0].attn.qkv.weight.dtype == torch.bfloat16
    assert model.decode_head.conv_seg.weight.dtype == torch.float32


def _groups(model, decay=0.9, wd=0.05):
    wrapper = build_optim_wrapper(model, dict(
        type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0, weight_decay=wd),
        constructor='LayerDecayOptimWrapperConstructor',
        paramwise_cfg=dict(layer_decay_rate=decay)))
    by_name = {}
    for group in wrapper.optimizer.param_groups:
        for name in group['param_names']:
            by_name[name] = group
    return wrapper, by_name


def test_layer_decay_lrs_and_no_decay_rules():
    model = build_segmentor(frozen=False)
    _, by_name = _groups(model)
    depth = 4 + 2  # num_layers + 2 ids
    assert by_name['backbone.cls_token']['lr'] == pytest.approx(0.9**(depth - 1))
    assert by_name['backbone.patch_embed.proj.weight']['lr'] == pytest.approx(0.9**(depth - 1))
    assert by_name['backbone.blocks.0.attn.qkv.weight']['lr'] == pytest.approx(0.9**(depth - 2))
    assert by_name['backbone.blocks.3.mlp.fc1.weight']['lr'] == pytest.approx(0.9)
    assert by_name['decode_head.conv_seg.weight']['lr'] == pytest.approx(1.0)
    for name in ('backbone.cls_token', 'backbone.pos_embed', 'backbone.blocks.0.norm1.weight',
                 'backbone.blocks.0.ls1.gamma', 'backbone.blocks.1.mlp.fc1.bias',
                 'decode_head.conv_seg.bias', 'backbone.patch_embed.proj.bias'):
        assert by_name[name]['weight_decay'] == 0.0, name
    for name in ('backbone.blocks.0.attn.qkv.weight', 'backbone.patch_embed.proj.weight',
                 'decode_head.conv_seg.weight'):
        assert by_name[name]['weight_decay'] == 0.05, name
    every = {n for n, p in model.named_parameters() if p.requires_grad}
    assert set(by_name) == every


def test_layer_decay_skips_frozen_and_survives_schedulers():
    from mmengine.optim import PolyLR
    model = build_segmentor(frozen=True)
    wrapper, by_name = _groups(model)
    assert not any(n.startswith('backbone.') for n in by_name)
    model = build_segmentor(frozen=False)
    wrapper, by_name = _groups(model, decay=0.5)
    scheduler = PolyLR(wrapper, power=1.0, end=10, by_epoch=False)
    for _ in range(3):
        wrapper.optimizer.step()
        scheduler.step()
    top = by_name['decode_head.conv_seg.weight']['lr']
    assert by_name['backbone.blocks.3.attn.qkv.weight']['lr'] == pytest.approx(top * 0.5)


def test_layer_decay_bad_config():
    model = build_segmentor(frozen=False)
    with pytest.raises(ValueError, match='layer_decay_rate must be in \\(0, 1\\], got 1.5'):
        _groups(model, decay=1.5)
    frozen = build_segmentor(frozen=True)
    for p in frozen.decode_head.parameters():
        p.requires_grad = False
    with pytest.raises(ValueError, match='no trainable parameters'):
        _groups(frozen)
    with pytest.raises(TypeError, match='needs an InternViT backbone'):
        build_optim_wrapper(torch.nn.Linear(2, 2), dict(
            type='OptimWrapper', optimizer=dict(type='AdamW', lr=1.0),
            constructor='LayerDecayOptimWrapperConstructor'))


def test_backbone_builds_from_mmseg_and_mmdet_scopes():
    from mmdet.registry import MODELS as DET_MODELS
    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS as SEG_MODELS
    from mmseg_internvit.models import InternViT
    for registry, scope in ((SEG_MODELS, 'mmseg'), (DET_MODELS, 'mmdet')):
        with DefaultScope.overwrite_default_scope(scope):
            for type_name in ('InternViT', 'mmseg_internvit.InternViT'):
                model = registry.build(dict(type=type_name, arch=TINY_6B_STYLE))
                assert isinstance(model, InternViT)
