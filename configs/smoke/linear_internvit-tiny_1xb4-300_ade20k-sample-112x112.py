# Smoke linear probe: a tiny random InternViT (frozen) + LinearProbeHead on the
# generated sample dataset (tools/dataset/make_sample_ade20k.py). Trains in
# about a minute on 2 CPU cores; `make demo` runs it.
_base_ = '../internvit_6b/linear_internvit-6b_8xb2-80k_ade20k-504x504.py'

crop_size = (112, 112)
data_root = 'data/ade_sample/ADEChallengeData2016'
tiny_arch = dict(_delete_=True, embed_dims=96, num_layers=4, num_heads=4, feedforward_channels=384,
                 qk_normalization=True, norm_type='rms', qkv_bias=False,
                 layer_scale_init=0.1, pretrain_size=112)
model = dict(
    data_preprocessor=dict(size=crop_size),
    backbone=dict(arch=tiny_arch, out_indices=[-1], dtype='float32', init_cfg=None),
    decode_head=dict(in_channels=96),
    test_cfg=dict(crop_size=crop_size, stride=(70, 70)))

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegLabels'),
    dict(type='RandomResize', scale=(256, 128), ratio_range=(0.75, 1.5), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs'),
]
# The 504-px protocol of the ADE20K configs, scaled to the 128-px sample images
# (--tta keeps the ADE20K configs' own multi-scale pipeline, from 504 px up).
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ShortSideResize', short_side=128),
    dict(type='ResizeToMultiple', size_divisor=14),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='CheckSegLabels'),
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
