# Smoke UperNet: the tiny InternViT (trainable) + SimpleFPN + mmseg's UPerHead
# and auxiliary FCNHead on the generated sample data.
_base_ = './linear_internvit-tiny-full_1xb4-300_ade20k-sample-112x112.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(out_indices=[0, 1, 2, 3]),
    neck=dict(type='SimpleFPN', in_channels=96, num_inputs=4),
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_channels=[96, 96, 96, 96],
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=64,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    auxiliary_head=dict(
        type='FCNHead',
        in_channels=96,
        in_index=2,
        channels=32,
        num_convs=1,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=0.4)))
