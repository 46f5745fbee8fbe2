# Frozen InternViT + BN/1x1-conv linear probe (upstream: 47.2 mIoU, 6B 224px).
_base_ = './encoder_decoder_internvit.py'

model = dict(
    backbone=dict(out_indices=[-4]),  # block 44 of 48
    decode_head=dict(
        type='mmseg_internvit.LinearProbeHead',
        in_channels=3200,
        in_index=0,
        num_classes=150,
        dropout_ratio=0.0,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
