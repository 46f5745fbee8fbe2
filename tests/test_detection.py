"""Tiny Mask R-CNN with InternViT backbones: train and test through tools/*.py (mmdet)."""
import glob
import json
import math
import os

import pytest
from mmengine.config import Config

from conftest import TINY_6B_STYLE
from test_train_tools import ROOT, losses_in, run_tool

DET_CONFIGS = sorted(glob.glob(os.path.join(ROOT, 'configs', 'detection', '*.py')))

TINY_CONFIG = '''
_base_ = {base!r}
data_root = {data_root!r}
metainfo = dict(classes=('rectangle', 'ellipse'))
model = dict(
    backbone=dict(
        vit=dict(arch=dict(_delete_=True, **{arch!r}), dtype='float32', init_cfg=None, with_cp=False),
        interaction_indexes=[[0, 1], [2, 3]], conv_inplanes=16, with_cp=False,
        norm_cfg=dict(type='BN'), out_norm_cfg=dict(type='BN')),
    neck=dict(in_channels=[64] * 4),
    roi_head=dict(bbox_head=dict(num_classes=2), mask_head=dict(num_classes=2)))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='Resize', scale=(160, 120), keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(160, 120), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                                          'scale_factor')),
]
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=train_pipeline,
                 ann_file='annotations/instances_train2017.json'))
test_dataloader = dict(
    batch_size=1, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, metainfo=metainfo, pipeline=test_pipeline,
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/')))
test_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
val_dataloader = None
val_evaluator = None
val_cfg = None
train_cfg = dict(max_epochs=1)
default_hooks = dict(logger=dict(interval=1))
'''


def test_detection_configs_are_found():
    names = {os.path.basename(p) for p in DET_CONFIGS}
    for arch in ('6b', '300m'):
        for kind in ('adapter', 'simplefpn'):
            assert f'mask-rcnn_internvit-{arch}-{kind}_8xb2-1x_coco.py' in names


@pytest.mark.parametrize('path', DET_CONFIGS, ids=os.path.basename)
def test_detection_config_builds(path):
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    cfg = Config.fromfile(path)
    assert cfg.default_scope == 'mmdet'
    backbone = cfg.model.backbone
    vit = backbone.get('vit', backbone)
    vit.update(arch=dict(TINY_6B_STYLE), init_cfg=None, dtype='float32')
    if 'interaction_indexes' in backbone:
        backbone.update(interaction_indexes=[[0, 1], [2, 3]], norm_cfg=dict(type='BN'),
                        out_norm_cfg=dict(type='BN'))
        cfg.model.neck.in_channels = [64] * 4
    else:
        cfg.model.neck.in_channels = 64
    init_default_scope('mmdet')
    MODELS.build(cfg.model).init_weights()


def test_sample_coco_is_deterministic(tmp_path):
    from mmseg_internvit.datasets.sample_coco import build_sample_coco
    a = build_sample_coco(str(tmp_path / 'a'))
    b = build_sample_coco(str(tmp_path / 'b'))
    with open(os.path.join(a['data_root'], a['train_ann'])) as f:
        ann_a = json.load(f)
    with open(os.path.join(b['data_root'], b['train_ann'])) as f:
        assert json.load(f) == ann_a
    assert len(ann_a['images']) == 4 and len(ann_a['annotations']) >= 8
    with pytest.raises(ValueError, match='num_images'):
        build_sample_coco(str(tmp_path / 'c'), num_images=0)


def test_tiny_mask_rcnn_trains_and_tests(tmp_path):
    from mmseg_internvit.datasets.sample_coco import build_sample_coco
    data = build_sample_coco(str(tmp_path / 'coco'))
    config = tmp_path / 'mask-rcnn_tiny.py'
    base = os.path.join(ROOT, 'configs', 'detection', 'mask-rcnn_internvit-6b-adapter_8xb2-1x_coco.py')
    config.write_text(TINY_CONFIG.format(base=base, data_root=data['data_root'] + '/',
                                         arch=dict(TINY_6B_STYLE)))
    work = tmp_path / 'work'
    out = run_tool('train.py', config, '--work-dir', work)
    assert (work / 'epoch_1.pth').exists(), out[-2000:]
    losses = losses_in(work)
    assert len(losses) == 2 and all(math.isfinite(v) for _, v in losses)
    out = run_tool('test.py', config, work / 'epoch_1.pth', '--work-dir', tmp_path / 'test')
    assert 'coco/bbox_mAP' in out and 'coco/segm_mAP' in out, out[-2000:]
