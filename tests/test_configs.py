"""Every shipped config builds its model (tiny arch) and its dataloader."""
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
    from mmseg_internvit.models.backbones.intern_vit import resolve_arch
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


@pytest.mark.parametrize('path', SEG_CONFIGS, ids=lambda p: os.path.relpath(p, ROOT))
def test_seg_config_builds_model_and_dataloader(path, sample_ade20k):
    from mmengine.registry import init_default_scope
    from mmseg.registry import DATA_SAMPLERS, DATASETS, MODELS  # noqa: F401
    cfg = tiny_cfg(path, sample_ade20k)
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
    def load(name):
        return Config.fromfile(next(p for p in CONFIGS if p.endswith(name)))
    probe = load('linear_internvit-6b_8xb2-80k_ade20k-504x504.py')
    assert probe.model.backbone.frozen and probe.model.backbone.out_indices == [-4]
    assert probe.optim_wrapper.optimizer.lr == 4e-5
    assert probe.optim_wrapper.optimizer.weight_decay == 0
    assert probe.train_cfg.max_iters == 80000
    assert probe.train_dataloader.batch_size * 8 == 16
    assert probe.model.test_cfg.crop_size == (504, 504) and probe.model.test_cfg.stride == (322, 322)
    head = load('upernet_internvit-6b-frozen_8xb2-80k_ade20k-504x504.py')
    assert head.model.backbone.out_indices == [11, 23, 35, 47]
    assert head.model.decode_head.channels == 1536 and head.optim_wrapper.optimizer.weight_decay == 0.05
    assert head.model.auxiliary_head.loss_decode.loss_weight == 0.4
    full = load('upernet_internvit-6b_8xb2-80k_ade20k-504x504.py')
    assert not full.model.backbone.frozen and full.model.backbone.drop_path_rate == 0.4
    assert full.optim_wrapper.paramwise_cfg.layer_decay_rate == 0.95
    assert full.model.backbone.with_cp and full.optim_wrapper.dtype == 'bfloat16'
    assert load('upernet_internvit-6b-448_8xb2-80k_ade20k-504x504.py') \
        .model.backbone.out_indices == [11, 22, 33, 44]
    for frac, iters in (('1-16', 5000), ('1-8', 10000), ('1-2', 40000)):
        cfg = load(f'linear_internvit-6b-fewshot-{frac}_8xb2-{iters // 1000}k_ade20k-504x504.py')
        assert cfg.train_cfg.max_iters == iters and cfg.param_scheduler[-1].end == iters
        with open(cfg.train_dataloader.dataset.ann_file) as f:
            assert len(f.read().split()) == 20210 // int(frac.split('-')[1])
