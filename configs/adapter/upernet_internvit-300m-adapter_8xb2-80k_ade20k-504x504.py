# As ./upernet_internvit-6b-adapter_8xb2-80k_ade20k-504x504.py with InternViT-300M.
_base_ = './upernet_internvit-6b-adapter_8xb2-80k_ade20k-504x504.py'

model = dict(
    backbone=dict(
        vit=dict(arch='300m', init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]]),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=768),
    auxiliary_head=dict(in_channels=1024))
