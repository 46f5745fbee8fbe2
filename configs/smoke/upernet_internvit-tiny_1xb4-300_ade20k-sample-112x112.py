# Smoke UperNet: the tiny InternViT (trainable) + SimpleFPN + mmseg's UPerHead
# and auxiliary FCNHead on the generated sample data.
_base_ = ['../_base_/models/upernet_internvit.py', './_base_/ade20k_sample_112x112.py']

model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(arch={{_base_.tiny_arch}}, out_indices=[0, 1, 2, 3], frozen=False,
                  drop_path_rate=0.1, dtype='float32', init_cfg=None),
    neck=dict(in_channels=96),
    decode_head=dict(in_channels=[96] * 4, channels=64),
    auxiliary_head=dict(in_channels=96, channels=32),
    test_cfg=dict(crop_size={{_base_.crop_size}}, stride=(70, 70)))
optim_wrapper = dict(optimizer=dict(lr=5e-4, weight_decay=0.05),
                     paramwise_cfg=dict(layer_decay_rate=0.9))
