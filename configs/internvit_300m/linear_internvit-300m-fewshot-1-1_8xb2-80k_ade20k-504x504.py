# As ../internvit_6b/linear_internvit-6b-fewshot-1-1_8xb2-80k_ade20k-504x504.py with InternViT-300M.
_base_ = '../internvit_6b/linear_internvit-6b-fewshot-1-1_8xb2-80k_ade20k-504x504.py'

model = dict(
    backbone=dict(arch='300m', init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
    decode_head=dict(in_channels=1024))
