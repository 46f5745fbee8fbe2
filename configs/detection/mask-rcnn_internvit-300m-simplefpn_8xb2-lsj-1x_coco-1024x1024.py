# As ./mask-rcnn_internvit-6b-simplefpn_8xb2-lsj-1x_coco-1024x1024.py with
# InternViT-300M (24 blocks: global attention in 5, 11, 17, 23, as ViTDet's
# ViT-L); fits 8 GPUs with plain DDP.
_base_ = './mask-rcnn_internvit-6b-simplefpn_8xb2-lsj-1x_coco-1024x1024.py'

model = dict(
    backbone=dict(arch='300m', global_attn_indexes=[5, 11, 17, 23],
                  init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
    neck=[
        dict(type='mmseg_internvit.SimpleFPN', in_channels=1024, num_inputs=1),
        dict(type='FPN', in_channels=[1024] * 4, out_channels=256, num_outs=5),
    ])
