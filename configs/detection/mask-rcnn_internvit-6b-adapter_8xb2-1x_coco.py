# Mask R-CNN 1x on COCO with ViT-Adapter on a frozen InternViT-6B + mmdet's FPN.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmseg_internvit.plugin'], allow_failed_imports=False)

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='InternViTAdapter',
        vit=dict(arch='6b', frozen=True, with_cp=True, dtype='bfloat16',
                 init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
        interaction_indexes=[[0, 11], [12, 23], [24, 35], [36, 47]],
        deform_ratio=0.25,
        cffn_ratio=0.25,
        num_extra_extractors=2,
        with_cp=True,
        norm_cfg=norm_cfg,
        out_norm_cfg=norm_cfg),
    neck=dict(_delete_=True, type='FPN', in_channels=[3200] * 4, out_channels=256,
              num_outs=5))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0),
    clip_grad=dict(max_norm=1.0, norm_type=2))
