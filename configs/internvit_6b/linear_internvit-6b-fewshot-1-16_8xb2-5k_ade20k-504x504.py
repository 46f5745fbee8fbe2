# Few-shot on a fixed 1/16 of ADE20K train, 5k iterations (upstream: 46.5 mIoU).
# The image lists ship in configs/_base_/datasets/ade20k_few_shot/ (made by
# tools/dataset/make_few_shot_splits.py); upstream drew a random subset per run.
# The 1/8, 1/4 and 1/2 configs inherit this file.
_base_ = './linear_internvit-6b-fewshot-1-1_8xb2-80k_ade20k-504x504.py'

train_dataloader = dict(dataset=dict(
    ann_file='{{ fileDirname }}/../_base_/datasets/ade20k_few_shot/train_1-16.txt'))
train_cfg = dict(max_iters=5000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=100 + 1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=5000 + 1),
]
# Upstream evaluates its 1/16..1/2 runs (ade20k_504x504_1of*.py) with mmseg's
# plain Resize, short side 504 with the long side capped at 2016, then
# ResizeToMultiple(14); only its full-data configs use the SETR resize.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2016, 504), keep_ratio=True),
    dict(type='ResizeToMultiple', size_divisor=14),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='mmseg_internvit.CheckSegLabels'),
    dict(type='PackSegInputs'),
]
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
