# ViTDet-style Mask R-CNN 1x: InternViT-6B last block + SimpleFPN (the PIIP
# baseline's layout; upstream used patch 16 and 1024 crops: 53.8 box / 48.1 mask AP).
_base_ = './mask-rcnn_internvit-6b-adapter_8xb2-1x_coco.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='InternViT',
        arch='6b',
        out_indices=[-1],
        frozen=True,
        dtype='bfloat16',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
    neck=dict(_delete_=True, type='SimpleFPN', in_channels=3200, num_inputs=1,
              out_channels=256, extra_pool=True))
