# Mask R-CNN with an InternViT backbone in mmdet 3.x: the heads, COCO data
# (1333 x 800), 1x schedule, runtime and AdamW with the layer-decay
# constructor, shared by every detection config. Each config states its
# backbone and neck; mmdet's ResNet-50 and FPN are removed here.
_base_ = [
    'mmdet::_base_/models/mask-rcnn_r50_fpn.py', 'mmdet::_base_/datasets/coco_instance.py',
    'mmdet::_base_/schedules/schedule_1x.py', 'mmdet::_base_/default_runtime.py'
]
custom_imports = dict(imports=['mmseg_internvit.plugin'], allow_failed_imports=False)

model = dict(backbone=dict(_delete_=True), neck=dict(_delete_=True))
# Stops a run whose heads' num_classes differs from the dataset's classes.
custom_hooks = [dict(type='NumClassCheckHook')]
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmseg_internvit.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
# mmdet's interval and retention settings, saved crash-safe: a kill while
# writing never costs the previous checkpoint.
default_hooks = dict(checkpoint=dict(type='mmseg_internvit.AtomicCheckpointHook'))
