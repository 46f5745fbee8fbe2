"""Mask R-CNN with InternViT backbones (mmdet 3.x): configs, COCO-format data, tiny real runs."""
import glob
import json
import math
import os
import re

import pytest
import torch
from mmengine.config import Config

from conftest import TINY_6B_STYLE
from test_train_tools import ROOT, losses_in, run_tool

DET_DIR = os.path.join(ROOT, 'configs', 'detection')
DET_CONFIGS = sorted(glob.glob(os.path.join(DET_DIR, '*.py')) +
                     glob.glob(os.path.join(DET_DIR, 'smoke', '*.py')))
SMOKE = os.path.join(DET_DIR, 'smoke',
                     'mask-rcnn_internvit-tiny-simplefpn_1xb2-lsj-12e_coco-format-160x160.py')

TINY_ADAPTER_CONFIG = '''
_base_ = {base!r}
data_root = {data_root!r}
metainfo = dict(classes=('rectangle', 'ellipse'))
model = dict(
    backbone=dict(
        vit=dict(arch=dict(_delete_=True, **{arch!r}), dtype='float32', init_cfg=None,
                 with_cp=False),
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


def data_options(data_root):
    """``--cfg-options`` pointing the smoke config at a generated COCO sample."""
    root = data_root + '/'
    ann = root + 'annotations/instances_val2017.json'
    return ['--cfg-options', *(f'{k}_dataloader.dataset.data_root={root}'
                               for k in ('train', 'val', 'test')),
            f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}']


def tiny_detector_cfg(path):
    """The config with its backbone at width 64 / 4 blocks and its neck to match."""
    cfg = Config.fromfile(path)
    backbone = cfg.model.backbone
    vit = backbone.get('vit', backbone)
    vit.update(arch=dict(TINY_6B_STYLE), init_cfg=None, dtype='float32')
    if vit.get('window_size'):
        vit.update(window_size=4, global_attn_indexes=[1, 3])
    if 'interaction_indexes' in backbone:
        backbone.update(interaction_indexes=[[0, 1], [2, 3]], norm_cfg=dict(type='BN'),
                        out_norm_cfg=dict(type='BN'))
        cfg.model.neck.in_channels = [64] * 4
    else:
        simple_fpn, fpn = cfg.model.neck
        simple_fpn.in_channels, fpn.in_channels = 64, [64] * 4
    return cfg


def write_coco(path, categories, annotations):
    images = [dict(id=1, file_name='000000.jpg', width=160, height=120)]
    path.write_text(json.dumps(dict(images=images, annotations=annotations,
                                    categories=categories)))
    return str(path)


def box(ann_id, category_id):
    return dict(id=ann_id, image_id=1, category_id=category_id, iscrowd=0, area=400.0,
                bbox=[10, 10, 20, 20], segmentation=[[10, 10, 30, 10, 30, 30, 10, 30]])


def test_detection_configs_are_found():
    names = {os.path.basename(p) for p in DET_CONFIGS}
    for arch in ('6b', '300m'):
        for kind in ('adapter-frozen', 'simplefpn-frozen'):
            assert f'mask-rcnn_internvit-{arch}-{kind}_8xb2-1x_coco.py' in names
        for schedule in ('1x', '3x'):
            assert f'mask-rcnn_internvit-{arch}-simplefpn_8xb2-lsj-{schedule}_coco-1024x1024.py' \
                in names
    for strategy in ('zero2', 'zero3', 'fsdp'):
        assert f'mask-rcnn_internvit-6b-simplefpn-{strategy}_8xb2-lsj-1x_coco-1024x1024.py' in names


@pytest.mark.parametrize('path', DET_CONFIGS, ids=os.path.basename)
def test_detection_config_builds(path):
    from mmengine.registry import init_default_scope
    from mmdet.registry import MODELS
    from mmseg_internvit.apis.config_checks import check_runner_key_spelling
    cfg = tiny_detector_cfg(path)
    check_runner_key_spelling(cfg, path)  # its own variables are not taken for typos
    assert cfg.default_scope == 'mmdet'
    init_default_scope('mmdet')
    model = MODELS.build(cfg.model)
    model.init_weights()
    # Every pyramid level times its anchor stride spans the input (224 px: 16
    # tokens of 14 px): SimpleFPN levels are stride 3.5..28, not mmdet's 4..32.
    with torch.no_grad():
        feats = model.extract_feat(torch.randn(1, 3, 224, 224))
    strides = cfg.model.rpn_head.anchor_generator.strides
    assert [f.shape[-1] * s for f, s in zip(feats, strides)][:4] == [224] * 4
    assert cfg.model.roi_head.bbox_roi_extractor.featmap_strides == strides[:4]


def test_full_tuning_recipe_settings():
    cfg = Config.fromfile(os.path.join(
        DET_DIR, 'mask-rcnn_internvit-6b-simplefpn_8xb2-lsj-1x_coco-1024x1024.py'))
    vit = cfg.model.backbone
    assert (vit.frozen, vit.drop_path_rate, vit.window_size) == (False, 0.4, 14)
    assert vit.global_attn_indexes == [11, 23, 35, 47] and vit.out_indices == [-1]
    assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
    assert cfg.optim_wrapper.optimizer.lr == 1e-4
    assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
    resize, crop = cfg.train_dataloader.dataset.pipeline[2:4]
    assert resize.scale == (1024, 1024) and resize.ratio_range == (0.1, 2.0)
    assert crop.crop_size == (1024, 1024) and crop.allow_negative_crop
    assert cfg.model.data_preprocessor.batch_augments[0].size == (1024, 1024)
    # Sharded variants keep float32 heads: no DeepSpeed bf16 / FSDP bf16 casting.
    zero2 = Config.fromfile(os.path.join(
        DET_DIR, 'mask-rcnn_internvit-6b-simplefpn-zero2_8xb2-lsj-1x_coco-1024x1024.py'))
    assert zero2.strategy.bf16.enabled is False and zero2.model.backbone.autocast_dtype
    fsdp = Config.fromfile(os.path.join(
        DET_DIR, 'mask-rcnn_internvit-6b-simplefpn-fsdp_8xb2-lsj-1x_coco-1024x1024.py'))
    assert fsdp.strategy.model_wrapper.mixed_precision is None


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


def test_coco_format_dataset_takes_classes_from_the_file(tmp_path):
    from mmdet.datasets import CocoDataset
    from mmseg_internvit.datasets.coco_format import CocoFormatDataset
    categories = [dict(id=9, name='disc'), dict(id=5, name='box')]
    ann_file = write_coco(tmp_path / 'ann.json', categories, [box(1, 5), box(2, 9), box(3, 5)])
    dataset = CocoFormatDataset(ann_file=ann_file, data_prefix=dict(img=''), pipeline=[])
    assert dataset.metainfo['classes'] == ('disc', 'box')  # file order = label order
    labels = [i['bbox_label'] for i in dataset.get_data_info(0)['instances']]
    assert labels == [1, 0, 1]
    subset = CocoFormatDataset(ann_file=ann_file, metainfo=dict(classes=('box',)),
                               data_prefix=dict(img=''), pipeline=[])
    assert subset.metainfo['classes'] == ('box',)
    assert [i['bbox_label'] for i in subset.get_data_info(0)['instances']] == [0, 0]
    # mmdet's own CocoDataset keeps COCO's 80 names and drops every annotation.
    plain = CocoDataset(ann_file=ann_file, data_prefix=dict(img=''), pipeline=[])
    assert len(plain.metainfo['classes']) == 80 and plain.get_data_info(0)['instances'] == []


def test_coco_format_dataset_rejects_unknown_category_ids(tmp_path):
    from mmdet.datasets import CocoDataset
    from mmseg_internvit.datasets.coco_format import CocoFormatDataset
    categories = [dict(id=1, name='rectangle'), dict(id=2, name='ellipse')]
    ann_file = write_coco(tmp_path / 'bad.json', categories, [box(1, 1), box(17, 7), box(3, 2)])
    message = (r"bad\.json: 1 annotation\(s\) use a category id that is not in 'categories' "
               r'\(ids \[1, 2\]\): annotation id 17 \(image_id 1\) has category_id 7')
    with pytest.raises(ValueError, match=message):
        CocoFormatDataset(ann_file=ann_file, pipeline=[])
    # What mmdet's CocoDataset does with it: drops annotation 17 without a word.
    plain = CocoDataset(ann_file=ann_file, data_prefix=dict(img=''), pipeline=[],
                        metainfo=dict(classes=('rectangle', 'ellipse')))
    assert len(plain.get_data_info(0)['instances']) == 2
    for bad, match in (([dict(id=1, name='a'), dict(id=1, name='b')], r'category ids \[.1.\]'),
                       ([], "no 'categories' list")):
        with pytest.raises(ValueError, match=match):
            CocoFormatDataset(ann_file=write_coco(tmp_path / 'c.json', bad, []), pipeline=[])
    with pytest.raises(ValueError, match=r"metainfo classes \['cat'\] are not categories"):
        CocoFormatDataset(ann_file=write_coco(tmp_path / 'd.json', categories, []),
                          metainfo=dict(classes=('cat',)), pipeline=[])
    # Not JSON at all (an image given as ann_file): json's message names no file.
    not_json = tmp_path / 'photo.jpg'
    not_json.write_bytes(b'\xff\xd8\xff\xe0 not json')
    with pytest.raises(ValueError, match=r'photo\.jpg is not a COCO annotation file \(JSON\): '
                                         r'.*; give the instances_\*\.json'):
        CocoFormatDataset(ann_file=str(not_json), pipeline=[])


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
    """The custom-COCO smoke config trained one epoch (2 iterations) on the sample."""
    from mmseg_internvit.datasets.sample_coco import build_sample_coco
    root = tmp_path_factory.mktemp('smoke')
    data = build_sample_coco(str(root / 'coco'))['data_root']
    work = root / 'work'
    out = run_tool('train.py', SMOKE, '--work-dir', work, *data_options(data),
                   'train_cfg.max_epochs=1', 'train_cfg.val_interval=12')
    return dict(data=data, work=work, out=out)


def test_detection_configs_save_checkpoints_crash_safe():
    """Every detection config, bases included, keeps mmdet's checkpoint interval
    but saves through the atomic hook, as the README promises."""
    paths = sorted(glob.glob(os.path.join(DET_DIR, '**', '*.py'), recursive=True))
    hooks = {os.path.relpath(p, DET_DIR): Config.fromfile(p).default_hooks.checkpoint
             for p in paths}
    assert len(hooks) == len(DET_CONFIGS) + 1  # + _base_/mask-rcnn_internvit.py
    stock = [name for name, hook in hooks.items()
             if hook.type != 'mmseg_internvit.AtomicCheckpointHook']
    assert not stock
    assert {hook.interval for hook in hooks.values()} == {1}


def test_smoke_run_leaves_only_complete_checkpoints(smoke_run):
    from mmseg_internvit.engine.checkpoint_files import checkpoint_problem
    work = smoke_run['work']
    assert re.search(r'\) AtomicCheckpointHook', smoke_run['out'])  # the registered hooks
    leftovers = [p.name for p in work.rglob('*') if p.name.endswith(('.partial', '.tmp'))]
    assert not leftovers
    last = (work / 'last_checkpoint').read_text()
    assert last == str(work / 'epoch_1.pth') and checkpoint_problem(last) is None


def test_full_tuning_trains_with_layer_decay_resumes_and_tests(smoke_run, tmp_path):
    from mmseg_internvit import register_all_modules
    register_all_modules()
    work = smoke_run['work']
    losses = losses_in(work)
    assert len(losses) == 2 and all(math.isfinite(v) for _, v in losses)
    ckpt = torch.load(work / 'epoch_1.pth', weights_only=True)
    groups = ckpt['optimizer']['param_groups']
    scale = {name: g['lr_scale'] for g in groups for name in g['param_names']}
    num_ids = TINY_6B_STYLE['num_layers'] + 2
    assert scale['backbone.patch_embed.proj.weight'] == min(scale.values()) == 0.95**(num_ids - 1)
    assert scale['backbone.cls_token'] == scale['backbone.pos_embed'] == 0.95**(num_ids - 1)
    assert scale['backbone.blocks.3.attn.qkv.weight'] == pytest.approx(0.95)
    heads = [n for n in scale if n.startswith(('neck.', 'rpn_head.', 'roi_head.'))]
    assert heads and all(scale[n] == 1.0 for n in heads)
    assert tuple(ckpt['meta']['dataset_meta']['classes']) == ('rectangle', 'ellipse')
    # Resume for a second epoch: the optimizer state carries on (4 AdamW steps).
    out = run_tool('train.py', SMOKE, '--work-dir', tmp_path / 'resumed', '--resume',
                   work / 'epoch_1.pth', *data_options(smoke_run['data']),
                   'train_cfg.max_epochs=2', 'train_cfg.val_interval=12')
    assert re.search(r'Epoch\(train\)\s+\[2\]\[2/2\]', out)
    assert not re.search(r'Epoch\(train\)\s+\[1\]', out)
    resumed = torch.load(tmp_path / 'resumed' / 'epoch_2.pth', weights_only=True)
    assert resumed['meta']['epoch'] == 2
    assert {int(s['step']) for s in resumed['optimizer']['state'].values()} == {4}
    out = run_tool('test.py', SMOKE, tmp_path / 'resumed' / 'epoch_2.pth',
                   '--work-dir', tmp_path / 'test', *data_options(smoke_run['data']))
    for metric in ('bbox', 'segm'):
        value = float(re.search(rf'coco/{metric}_mAP: (-?[\d.]+)', out).group(1))
        assert 0 <= value <= 1


def test_custom_coco_recipe_inferencer(smoke_run, tmp_path):
    from mmdet.apis import DetInferencer
    from mmengine.utils import import_modules_from_strings
    # DetInferencer does not read custom_imports; the recipe imports them first.
    import_modules_from_strings(**Config.fromfile(SMOKE).custom_imports)
    inferencer = DetInferencer(model=SMOKE, weights=str(smoke_run['work'] / 'epoch_1.pth'),
                               device='cpu', show_progress=False)
    assert tuple(inferencer.model.dataset_meta['classes']) == ('rectangle', 'ellipse')
    image = os.path.join(smoke_run['data'], 'val2017', '000000.jpg')
    out = inferencer(image, out_dir=str(tmp_path / 'out'), pred_score_thr=0.0)
    (pred,) = out['predictions']
    assert len(pred['labels']) == len(pred['scores']) == len(pred['bboxes']) > 0
    assert set(pred['labels']) <= {0, 1}
    assert all(0 <= s <= 1 for s in pred['scores'])
    drawn = glob.glob(str(tmp_path / 'out' / 'vis' / '*.jpg'))
    assert [os.path.basename(p) for p in drawn] == ['000000.jpg']


def test_num_classes_mismatch_is_stopped(smoke_run, tmp_path):
    import subprocess
    import sys
    cmd = [sys.executable, os.path.join(ROOT, 'tools', 'train.py'), SMOKE, '--work-dir',
           str(tmp_path), *data_options(smoke_run['data']),
           'model.roi_head.bbox_head.num_classes=3', 'train_cfg.max_epochs=1']
    out = subprocess.run(cmd, capture_output=True, text=True)
    # mmdet's NumClassCheckHook asserts; the tool reports it as a user error.
    assert out.returncode == 2, out.stderr[-3000:]
    assert 'Traceback' not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith('error: The `num_classes` (3) in Shared2FCBBoxHead')
    assert 'does not matches the length of `classes` 2) in CocoFormatDataset' in last
    assert last.endswith('set num_classes of the heads (model.roi_head.bbox_head and '
                         'mask_head) to the number of classes of the dataset')


def test_tiny_adapter_mask_rcnn_trains_and_tests(tmp_path):
    from mmseg_internvit.datasets.sample_coco import build_sample_coco
    data = build_sample_coco(str(tmp_path / 'coco'))
    config = tmp_path / 'mask-rcnn_tiny.py'
    base = os.path.join(DET_DIR, 'mask-rcnn_internvit-6b-adapter-frozen_8xb2-1x_coco.py')
    config.write_text(TINY_ADAPTER_CONFIG.format(base=base, data_root=data['data_root'] + '/',
                                                 arch=dict(TINY_6B_STYLE)))
    work = tmp_path / 'work'
    out = run_tool('train.py', config, '--work-dir', work)
    assert (work / 'epoch_1.pth').exists(), out[-2000:]
    losses = losses_in(work)
    assert len(losses) == 2 and all(math.isfinite(v) for _, v in losses)
    out = run_tool('test.py', config, work / 'epoch_1.pth', '--work-dir', tmp_path / 'test')
    assert 'coco/bbox_mAP' in out and 'coco/segm_mAP' in out, out[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize('strategy', ['zero2', 'fsdp'])
def test_sharded_detection_trains_on_two_processes(strategy, tmp_path):
    """A sharded recipe's precision setup (float32 weights and heads, bf16 autocast
    in the ViT) on 2 CPU processes: the strategy of the 6B config on the smoke model."""
    pytest.importorskip('deepspeed')
    from test_distributed import torchrun
    from mmseg_internvit.datasets.sample_coco import build_sample_coco
    data = build_sample_coco(str(tmp_path / 'coco'))['data_root']
    recipe = Config.fromfile(os.path.join(
        DET_DIR, f'mask-rcnn_internvit-6b-simplefpn-{strategy}_8xb2-lsj-1x_coco-1024x1024.py'))
    config = tmp_path / f'{strategy}_smoke.py'
    config.write_text(f'_base_ = {SMOKE!r}\nrunner_type = {recipe.runner_type!r}\n'
                      f'strategy = {recipe.strategy.to_dict()!r}\n'
                      f'optim_wrapper = {recipe.optim_wrapper.to_dict()!r}\n')
    work = tmp_path / 'work'
    torchrun('train.py', config, '--work-dir', work, *data_options(data),
             'train_cfg.max_epochs=2', 'train_cfg.val_interval=12')
    losses = losses_in(work)
    assert len(losses) == 2 and all(math.isfinite(v) for _, v in losses)
    assert (work / 'epoch_2.pth').exists()
