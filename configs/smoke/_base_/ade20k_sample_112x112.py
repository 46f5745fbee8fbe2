# Data, schedule and runtime of the smoke configs: the generated sample dataset
# (tools/dataset/make_sample_ade20k.py, 128-px images), 112-px crops, 300
# iterations; the 504-px evaluation protocol of the ADE20K configs scaled to
# 128 px. The smoke configs combine this with a model base and shrink widths.
_base_ = [
    '../../_base_/datasets/ade20k_504x504.py', '../../_base_/default_runtime.py',
    '../../_base_/schedules/adamw_layer_decay_80k.py'
]

crop_size = (112, 112)
data_root = 'data/ade_sample/ADEChallengeData2016'
# A 96-wide, 4-block InternViT-6B-style backbone (model.backbone.arch).
tiny_arch = dict(_delete_=True, embed_dims=96, num_layers=4, num_heads=4, feedforward_channels=384,
                 qk_normalization=True, norm_type='rms', qkv_bias=False,
                 layer_scale_init=0.1, pretrain_size=112)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='mmseg_internvit.CheckSegLabels'),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
# (--tta keeps the ADE20K configs' own multi-scale pipeline, from 504 px up).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmseg_internvit.ShortSideResize', short_side=128),
    dict(type='ResizeToMultiple', size_divisor=14),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='mmseg_internvit.CheckSegLabels'),
    dict(type='PackSegInputs'),
]
train_dataloader = dict(
    batch_size=4, num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(data_root=data_root, pipeline=test_pipeline))
test_dataloader = val_dataloader

max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=2e-3))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-3, by_epoch=False, begin=0, end=20),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=20, end=max_iters),
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
# One checkpoint at the end, none kept as "best" (the ADE20K configs keep the
# last two and the best, as upstream).
default_hooks = dict(
    logger=dict(interval=50),
    checkpoint=dict(interval=max_iters, max_keep_ckpts=-1, save_best=None))
randomness = dict(seed=0)
