# As ../internvit_6b/upernet_internvit-6b-zero1_8xb2-80k_ade20k-504x504.py with InternViT-6B-448px-V1-5.
_base_ = '../internvit_6b/upernet_internvit-6b-zero1_8xb2-80k_ade20k-504x504.py'

model = dict(
    backbone=dict(arch='6b-448', out_indices=[11, 22, 33, 44],
                  init_cfg=dict(checkpoint='pretrained/InternViT-6B-448px-V1-5')))
