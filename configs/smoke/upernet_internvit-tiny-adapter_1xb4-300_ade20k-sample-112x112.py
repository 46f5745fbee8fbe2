# Smoke ViT-Adapter: a tiny random frozen InternViT + adapter + small UPerHead
# on the generated sample dataset (same data and schedule as the linear smoke).
_base_ = './linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py'

width = 64
model = dict(
    backbone=dict(
        _delete_=True,
        type='InternViTAdapter',
        vit=dict(
            arch=dict(embed_dims=width, num_layers=4, num_heads=4, feedforward_channels=256,
                      qk_normalization=True, norm_type='rms', qkv_bias=False,
                      layer_scale_init=0.1, pretrain_size=112),
            frozen=True,
            dtype='float32',
            init_cfg=None),
        interaction_indexes=[[0, 1], [2, 3]],
        conv_inplanes=16,
        norm_cfg={{_base_.norm_cfg}},
        out_norm_cfg={{_base_.norm_cfg}}),
    decode_head=dict(
        _delete_=True,
        type='UPerHead',
        in_channels=[width] * 4,
        in_index=[0, 1, 2, 3],
        pool_scales=(1, 2, 3, 6),
        channels=32,
        dropout_ratio=0.1,
        num_classes=150,
        norm_cfg={{_base_.norm_cfg}},
        align_corners=False,
        loss_decode=dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
