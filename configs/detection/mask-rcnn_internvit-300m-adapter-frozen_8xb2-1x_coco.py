# As ./mask-rcnn_internvit-6b-adapter-frozen_8xb2-1x_coco.py with InternViT-300M.
_base_ = './mask-rcnn_internvit-6b-adapter-frozen_8xb2-1x_coco.py'

model = dict(
    backbone=dict(
        vit=dict(arch='300m', init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
        interaction_indexes=[[0, 5], [6, 11], [12, 17], [18, 23]]),
    neck=dict(in_channels=[1024] * 4))
