# Mask R-CNN 1x on COCO (1333 x 800): ViT-Adapter on a frozen InternViT-6B +
# mmdet's FPN. Only the adapter, neck and heads train.
_base_ = './_base_/mask-rcnn_internvit.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        type='mmseg_internvit.InternViTAdapter',
        vit=dict(arch='6b', frozen=True, with_cp=True, dtype='bfloat16',
                 init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
        interaction_indexes=[[0, 11], [12, 23], [24, 35], [36, 47]],
        deform_ratio=0.25,
        cffn_ratio=0.25,
        num_extra_extractors=2,
        with_cp=True,
        norm_cfg=norm_cfg,
        out_norm_cfg=norm_cfg),
    neck=dict(type='FPN', in_channels=[3200] * 4, out_channels=256, num_outs=5))
optim_wrapper = dict(clip_grad=dict(max_norm=1.0, norm_type=2))
