# ADE20K at the InternViT crop: 504 = 36 x 14 tokens. mmseg's own ADE20K base
# supplies the dataset, dataloaders and IoU evaluator; only the sizes differ.
_base_ = 'mmseg::_base_/datasets/ade20k.py'

crop_size = (504, 504)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='mmseg_internvit.CheckSegLabels'),
    dict(type='RandomResize', scale=(2016, 504), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputs'),
]
# Upstream's evaluation (SETR_Resize with setr_multi_scale in
# MultiScaleFlipAug(2016, 504), then ResizeToMultiple(14)): short side 504 with
# no cap on the long side, then both sides rounded up to a multiple of 14. The
# label is loaded after the resizes, so mIoU is computed at the original size.
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='mmseg_internvit.ShortSideResize', short_side=504),
    dict(type='ResizeToMultiple', size_divisor=14),
    dict(type='LoadAnnotations', reduce_zero_label=True),
    dict(type='mmseg_internvit.CheckSegLabels'),
    dict(type='PackSegInputs'),
]
# Multi-scale + flip (tools/test.py --tta; upstream ships no TTA numbers). As
# upstream's SETR multi-scale mode, scales never go below the 504 crop.
tta_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(
        type='TestTimeAug',
        transforms=[
            [dict(type='mmseg_internvit.ShortSideResize', short_side=int(504 * r)) for r in (1.0, 1.25, 1.5, 1.75)],
            [dict(type='ResizeToMultiple', size_divisor=14)],
            [dict(type='RandomFlip', prob=0., direction='horizontal'),
             dict(type='RandomFlip', prob=1., direction='horizontal')],
            [dict(type='LoadAnnotations')],
            [dict(type='PackSegInputs')],
        ])
]
# 8 GPUs x 2 images = the upstream batch of 16.
train_dataloader = dict(batch_size=2, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
