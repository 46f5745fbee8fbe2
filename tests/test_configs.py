"""Every shipped config builds its model (tiny arch) and its dataloader."""
import copy
import functools
import glob
import os

import pytest
import torch
from mmengine.config import Config

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = sorted(p for p in glob.glob(os.path.join(ROOT, 'configs', '**', '*.py'),
                                      recursive=True) if '_base_' not in p)
SEG_CONFIGS = [p for p in CONFIGS if os.sep + 'detection' + os.sep not in p]
TINY_WIDTH = 32


def tiny_cfg(path, data_root):
    """The config with its backbone shrunk to width 32 (same depth) and sample data."""
    cfg = Config.fromfile(path)
    backbone = cfg.model.get('backbone')
    vit = backbone.get('vit', backbone)  # adapters nest the ViT arguments
    from mmseg_internvit.models.backbones.arch_zoo import resolve_arch
    arch = resolve_arch(vit['arch'])
    arch.update(embed_dims=TINY_WIDTH, num_heads=2, feedforward_channels=2 * TINY_WIDTH,
                pretrain_size=56)
    vit.update(arch=arch, init_cfg=None, dtype='float32')

    def shrink(module_cfg):
        if module_cfg is None:
            return
        c = module_cfg.get('in_channels')
        if isinstance(c, int):
            module_cfg.in_channels = TINY_WIDTH
        elif isinstance(c, (list, tuple)):
            module_cfg.in_channels = [TINY_WIDTH] * len(c)
        if module_cfg.get('channels') and module_cfg.get('type') in ('UPerHead', 'FCNHead'):
            module_cfg.channels = 16

    for key in ('neck', 'decode_head', 'auxiliary_head'):
        shrink(cfg.model.get(key))
    for loader in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        if cfg.get(loader):
            cfg[loader].dataset.data_root = data_root
            cfg[loader].num_workers = 0
            cfg[loader].persistent_workers = False
    return cfg


@functools.lru_cache(maxsize=None)
def _parsed(path):
    return Config.fromfile(path)


def load(name_or_path):
    """A shipped config by file name (or path), parsed once per session; a copy."""
    matches = [p for p in CONFIGS if name_or_path in (p, os.path.basename(p))]
    assert len(matches) == 1, name_or_path
    return copy.deepcopy(_parsed(matches[0]))


FAMILIES = (('6b', 3200), ('6b-448', 3200), ('300m', 1024))
FEW_SHOT = (('1-16', 5, 100), ('1-8', 10, 200), ('1-4', 20, 400), ('1-2', 40, 800),
            ('1-1', 80, 1500))  # fraction, k iterations, upstream warm-up


def test_configs_are_found():
    names = {os.path.basename(p) for p in CONFIGS}
    for arch in ('6b', '6b-448', '300m'):
        assert f'linear_internvit-{arch}_8xb2-80k_ade20k-504x504.py' in names
        assert f'upernet_internvit-{arch}-frozen_8xb2-80k_ade20k-504x504.py' in names
        assert f'upernet_internvit-{arch}_8xb2-80k_ade20k-504x504.py' in names
        for frac, iters in (('1-16', '5k'), ('1-8', '10k'), ('1-4', '20k'), ('1-2', '40k'),
                            ('1-1', '80k')):
            assert f'linear_internvit-{arch}-fewshot-{frac}_8xb2-{iters}_ade20k-504x504.py' \
                in names


def test_a_near_miss_of_a_runner_setting_is_refused():
    """tools/train.py and test.py refuse top-level keys one typo away from a runner
    setting (the shipped configs pass: checked where each is built below and in
    test_detection.py)."""
    from mmseg_internvit.apis.config_checks import check_runner_key_spelling
    with pytest.raises(ValueError, match="'val_evalutor' is no runner setting .* did you mean "
                       "'val_evaluator'"):
        check_runner_key_spelling(Config(dict(val_evalutor=dict())), 'x.py')


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_seg_config_builds_model_and_dataloader(path, sample_ade20k):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATA_SAMPLERS, DATASETS, MODELS  # noqa: F401
    from mmseg_internvit.apis.config_checks import (check_runner_key_spelling,
                                                    head_class_count_mismatch)
    cfg = tiny_cfg(path, sample_ade20k)
    check_runner_key_spelling(cfg, path)  # its own variables are not taken for typos
    assert head_class_count_mismatch(cfg) is None
    init_default_scope(cfg.get('default_scope', 'mmseg'))
    model = MODELS.build(cfg.model)
    model.init_weights()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(dataset) > 0
    if not cfg.train_dataloader.dataset.get('ann_file'):
        sample = dataset[0]
        assert sample['inputs'].shape[0] == 3
    assert cfg.model.test_cfg.mode == 'slide'


def test_reference_settings_are_in_the_configs():
    probe = load('linear_internvit-6b_8xb2-80k_ade20k-504x504.py')
    assert probe.model.backbone.frozen and probe.model.backbone.out_indices == [-4]
    assert probe.optim_wrapper.optimizer.lr == 4e-5
    assert probe.optim_wrapper.optimizer.weight_decay == 0
    assert probe.train_cfg.max_iters == 80000
    assert probe.train_dataloader.batch_size * 8 == 16
    assert probe.model.test_cfg.crop_size == (504, 504)
    assert probe.model.test_cfg.stride == (322, 322)
    head = load('upernet_internvit-6b-frozen_8xb2-80k_ade20k-504x504.py')
    assert head.model.backbone.out_indices == [11, 23, 35, 47]
    assert head.model.decode_head.channels == 1536
    assert head.optim_wrapper.optimizer.weight_decay == 0.05
    assert head.model.auxiliary_head.loss_decode.loss_weight == 0.4
    full = load('upernet_internvit-6b_8xb2-80k_ade20k-504x504.py')
    assert not full.model.backbone.frozen and full.model.backbone.drop_path_rate == 0.4
    assert full.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
    assert full.model.backbone.with_cp and full.optim_wrapper.dtype == 'bfloat16'
    assert load('upernet_internvit-6b-448_8xb2-80k_ade20k-504x504.py') \
        .model.backbone.out_indices == [11, 22, 33, 44]
    for frac, iters in (('1-16', 5000), ('1-8', 10000), ('1-2', 40000)):
        cfg = load(f'linear_internvit-6b-fewshot-{frac}_8xb2-{iters // 1000}k_ade20k-504x504.py')
        assert cfg.train_cfg.max_iters == iters and cfg.param_scheduler[-1].end == iters + 1
        with open(cfg.train_dataloader.dataset.ann_file) as f:
            assert len(f.read().split()) == 20210 // int(frac.split('-')[1])
    assert load('linear_internvit-6b-fewshot-1-1_8xb2-80k_ade20k-504x504.py') \
        .train_dataloader.dataset.get('ann_file', '') == ''


@pytest.mark.parametrize('arch,width', FAMILIES)
def test_auxiliary_heads_as_upstream(arch, width):
    """1536 channels; head tuning reads pyramid level 1, full tuning upernet_r50's level 2."""
    settings = [('frozen', 1)] + [(s, 2) for s in ('', 'zero1', 'zero2', 'zero3', 'fsdp')]
    for suffix, in_index in settings:
        cfg = load(f'upernet_internvit-{arch}{"-" + suffix if suffix else ""}'
                   '_8xb2-80k_ade20k-504x504.py')
        aux = cfg.model.auxiliary_head
        assert (aux.type, aux.in_channels, aux.channels, aux.in_index) == \
            ('FCNHead', width, 1536, in_index), (arch, suffix)
        assert (aux.num_convs, aux.concat_input, aux.dropout_ratio) == (1, False, 0.1)
        assert aux.loss_decode.loss_weight == 0.4 and aux.norm_cfg.type == 'SyncBN'
        assert cfg.model.decode_head.channels == (768 if arch == '300m' else 1536)
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == (1.0 if in_index == 1
                                                                    else 0.95)
    # The ViT-Adapter keeps ViT-Adapter's own auxiliary head.
    adapter = load('upernet_internvit-6b-adapter_8xb2-80k_ade20k-504x504.py')
    auxiliary = adapter.model.auxiliary_head
    assert (auxiliary.in_index, auxiliary.channels) == (2, 256)


@pytest.mark.parametrize('arch,width', FAMILIES)
def test_few_shot_strategies_and_warm_ups(arch, width):
    for frac, kiters, warmup in FEW_SHOT:
        cfg = load(f'linear_internvit-{arch}-fewshot-{frac}_8xb2-{kiters}k_ade20k-504x504.py')
        backbone = cfg.model.backbone
        assert not backbone.frozen and backbone.drop_path_rate == 0.4 and backbone.with_cp
        assert backbone.out_indices == [-1] and cfg.model.decode_head.in_channels == width
        assert cfg.optim_wrapper.optimizer.weight_decay == 0.05
        assert cfg.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
        assert cfg.train_cfg.max_iters == kiters * 1000 and cfg.train_cfg.val_interval == 1000
        linear, poly = cfg.param_scheduler
        assert (linear.type, linear.begin, linear.end, linear.start_factor) == \
            ('LinearLR', 0, warmup + 1, 1e-6)
        assert (poly.type, poly.begin, poly.end, poly.power, poly.eta_min) == \
            ('PolyLR', 0, kiters * 1000 + 1, 1.0, 0.0)
        if arch == '300m':
            # Fits plain DDP: no strategy, bf16 autocast.
            assert cfg.runner_type == 'Runner' and not cfg.strategy
            assert (cfg.optim_wrapper.type, cfg.optim_wrapper.dtype) == ('AmpOptimWrapper',
                                                                         'bfloat16')
        else:
            # The 6B is fully tuned: ZeRO-2, bf16, as the -zero2 full-tuning configs.
            zero2 = load(f'upernet_internvit-{arch}-zero2_8xb2-80k_ade20k-504x504.py')
            assert cfg.runner_type == 'FlexibleRunner'
            assert cfg.strategy == zero2.strategy and cfg.strategy.zero_optimization.stage == 2
            assert cfg.strategy.bf16.enabled and cfg.strategy.train_micro_batch_size_per_gpu == 2
            assert cfg.optim_wrapper.type == zero2.optim_wrapper.type == \
                'mmseg_internvit.DeepSpeedNoGradStepOptimWrapper'
            assert backbone.dtype == 'float32'


def test_schedules_reproduce_upstream_poly_with_linear_warm_up():
    """mmcv 1.x: lr(t) = lr0 * (1 - t / T) * (r + (1 - r) * min(t / W, 1)), r = 1e-6."""
    from mmengine.registry import PARAM_SCHEDULERS
    for frac, kiters, warmup in FEW_SHOT:
        cfg = load(f'linear_internvit-6b-fewshot-{frac}_8xb2-{kiters}k_ade20k-504x504.py')
        total = cfg.train_cfg.max_iters
        base_lrs = (4e-5, 4e-5 * 0.95**49)
        optimizer = torch.optim.AdamW([dict(params=[torch.nn.Parameter(torch.zeros(1))], lr=lr)
                                       for lr in base_lrs])
        schedulers = [PARAM_SCHEDULERS.build(dict(s, optimizer=optimizer))
                      for s in cfg.param_scheduler]
        worst = 0.0
        for t in range(total):
            factor = (1 - t / total) * (1e-6 + (1 - 1e-6) * min(t / warmup, 1.0))
            for group, lr in zip(optimizer.param_groups, base_lrs):
                worst = max(worst, abs(group['lr'] - lr * factor) / lr)
            for scheduler in schedulers:
                scheduler.step()
        assert worst < 1e-12, (frac, worst)


def test_every_ade20k_config_evaluates_with_upstream_resize():
    """Short side 504 uncapped (SETR) + multiple of 14; upstream's 1/16..1/2 configs cap at 2016."""
    for path in SEG_CONFIGS:
        if os.sep + 'smoke' + os.sep in path:
            continue
        cfg = load(path)
        subset = 'fewshot' in path and '-1-1_' not in path
        for loader in ('val_dataloader', 'test_dataloader'):
            steps = cfg[loader].dataset.pipeline
            names = [s['type'] for s in steps]
            assert names == ['LoadImageFromFile',
                             'Resize' if subset else 'mmseg_internvit.ShortSideResize',
                             'ResizeToMultiple', 'LoadAnnotations',
                             'mmseg_internvit.CheckSegLabels', 'PackSegInputs'], (path, names)
            if subset:
                assert steps[1]['scale'] == (2016, 504) and steps[1]['keep_ratio']
            else:
                assert steps[1]['short_side'] == 504
            assert steps[2]['size_divisor'] == 14
        tta = cfg.tta_pipeline[1]
        assert tta.type == 'TestTimeAug'
        assert [t['short_side'] for t in tta.transforms[0]] == [504, 630, 756, 882]
        assert tta.transforms[1] == [dict(type='ResizeToMultiple', size_divisor=14)]
        assert cfg.model.test_cfg == dict(mode='slide', crop_size=(504, 504), stride=(322, 322))
        hook = cfg.default_hooks.checkpoint
        assert (hook.interval, hook.max_keep_ckpts, hook.save_best) == (1000, 2, 'mIoU')
        assert cfg.train_cfg.val_interval == 1000
