# Smoke ViT-Adapter: a tiny random frozen InternViT + adapter + small UPerHead
# on the generated sample dataset (the smoke UPerNet with the adapter as backbone).
_base_ = './upernet_internvit-tiny_1xb4-300_ade20k-sample-112x112.py'

width = 64
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmseg_internvit.InternViTAdapter',
        vit=dict(arch=dict(embed_dims=width, num_layers=4, num_heads=4,
                           feedforward_channels=4 * width, qk_normalization=True, norm_type='rms',
                           qkv_bias=False, layer_scale_init=0.1, pretrain_size=112),
                 frozen=True, dtype='float32', init_cfg=None),
        interaction_indexes=[[0, 1], [2, 3]],
        conv_inplanes=16,
        norm_cfg={{_base_.norm_cfg}},
        out_norm_cfg={{_base_.norm_cfg}}),
    neck=None,
    decode_head=dict(in_channels=[width] * 4, channels=32),
    auxiliary_head=None)
optim_wrapper = dict(optimizer=dict(lr=2e-3, weight_decay=0.0),
                     paramwise_cfg=dict(layer_decay_rate=1.0))
