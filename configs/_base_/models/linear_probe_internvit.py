# Frozen InternViT + BN/1x1-conv linear probe (upstream: 47.2 mIoU, 6B 224px).
custom_imports = dict(imports=['mmseg_internvit.plugin'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(504, 504))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='InternViT',
        arch='6b',
        out_indices=[-4],  # block 44 of 48
        frozen=True,
        dtype='bfloat16',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
    decode_head=dict(
        type='LinearProbeHead',
        in_channels=3200,
        in_index=0,
        num_classes=150,
        dropout_ratio=0.0,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322)))
