# As ../internvit_6b/upernet_internvit-6b-zero2_8xb2-80k_ade20k-504x504.py with InternViT-300M.
_base_ = '../internvit_6b/upernet_internvit-6b-zero2_8xb2-80k_ade20k-504x504.py'

model = dict(
    backbone=dict(arch='300m', out_indices=[5, 11, 17, 23],
                  init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
    neck=dict(in_channels=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=768),
    auxiliary_head=dict(in_channels=1024))
