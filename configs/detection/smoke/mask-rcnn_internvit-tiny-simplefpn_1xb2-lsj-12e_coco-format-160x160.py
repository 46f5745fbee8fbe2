# Your own COCO-format data, in miniature: the full-tuning recipe of
# ../mask-rcnn_internvit-6b-simplefpn_8xb2-lsj-1x_coco-1024x1024.py (windowed
# InternViT, SimpleFPN + FPN, Mask R-CNN, layer decay 0.95, large-scale jitter)
# at width 64 on 160 x 160 crops, runnable on a CPU. CocoFormatDataset takes the
# classes from the annotation file's categories and rejects annotations of
# unknown categories; set num_classes to the number of categories
# (NumClassCheckHook stops a mismatch). docs/detection.md has the full recipe.
_base_ = '../mask-rcnn_internvit-6b-simplefpn_8xb2-lsj-1x_coco-1024x1024.py'

data_root = 'data/coco_sample/'
num_classes = 2
image_size = (160, 160)
width = 64
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, embed_dims=width, num_layers=4, num_heads=4, feedforward_channels=4 * width,
                  qk_normalization=True, norm_type='rms', qkv_bias=False, layer_scale_init=0.1,
                  pretrain_size=56),
        init_cfg=None,
        with_cp=False,
        window_size=4,
        global_attn_indexes=[1, 3]),
    neck=[
        dict(type='mmseg_internvit.SimpleFPN', in_channels=width, num_inputs=1),
        dict(type='FPN', in_channels=[width] * 4, out_channels=32, num_outs=5),
    ],
    rpn_head=dict(in_channels=32, feat_channels=32),
    roi_head=dict(
        bbox_roi_extractor=dict(out_channels=32),
        bbox_head=dict(in_channels=32, fc_out_channels=64, num_classes=num_classes),
        mask_roi_extractor=dict(out_channels=32),
        mask_head=dict(in_channels=32, conv_out_channels=32, num_classes=num_classes)),
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=image_size, pad_mask=True)]))

# The recipe's pipelines (_base_: the recipe's values), every 1024-px size in
# them (resize scale, crop) at 160 px.
train_pipeline, test_pipeline = (
    [dict(step, **{key: image_size for key in ('scale', 'crop_size') if key in step})
     for step in pipeline]
    for pipeline in (_base_.train_pipeline, _base_.test_pipeline))
dataset_type = 'mmseg_internvit.CocoFormatDataset'
train_dataloader = dict(
    batch_size=2, num_workers=0, persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root, ann_file='annotations/instances_train2017.json',
                 data_prefix=dict(img='train2017/'), pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0, persistent_workers=False,
    dataset=dict(type=dataset_type, data_root=data_root,
                 ann_file='annotations/instances_val2017.json',
                 data_prefix=dict(img='val2017/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data_root + 'annotations/instances_val2017.json')
test_evaluator = val_evaluator

train_cfg = dict(max_epochs=12, val_interval=12)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=4),
    dict(type='MultiStepLR', begin=0, end=12, by_epoch=True, milestones=[8, 11], gamma=0.1),
]
default_hooks = dict(logger=dict(interval=1))
