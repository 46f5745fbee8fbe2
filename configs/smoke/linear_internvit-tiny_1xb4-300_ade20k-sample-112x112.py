# Smoke linear probe: a tiny random InternViT (frozen) + LinearProbeHead on the
# generated sample dataset. Trains in about a minute on 2 CPU cores; `make demo`
# runs it.
_base_ = ['../_base_/models/linear_probe_internvit.py', './_base_/ade20k_sample_112x112.py']

model = dict(
    data_preprocessor=dict(size={{_base_.crop_size}}),
    backbone=dict(arch={{_base_.tiny_arch}}, out_indices=[-1], dtype='float32', init_cfg=None),
    decode_head=dict(in_channels=96),
    test_cfg=dict(crop_size={{_base_.crop_size}}, stride=(70, 70)))
