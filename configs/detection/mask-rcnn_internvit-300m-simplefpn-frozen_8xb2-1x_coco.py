# As ./mask-rcnn_internvit-6b-simplefpn-frozen_8xb2-1x_coco.py with InternViT-300M.
_base_ = './mask-rcnn_internvit-6b-simplefpn-frozen_8xb2-1x_coco.py'

model = dict(
    backbone=dict(arch='300m', init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
    neck=[
        dict(type='mmseg_internvit.SimpleFPN', in_channels=1024, num_inputs=1),
        dict(type='FPN', in_channels=[1024] * 4, out_channels=256, num_outs=5),
    ])
