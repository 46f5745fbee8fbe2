# Full tuning, Mask R-CNN 1x: the settings of the PIIP InternViT-6B baseline
# (53.8 box / 48.1 mask AP, quoted; mmdet 2.x, patch 16): drop path 0.4, layer
# decay 0.95, AdamW lr 1e-4, weight decay 0.05, 1024 x 1024 crops, batch 16.
# Ours adds ViTDet's window attention and large-scale jitter; the README lists
# every difference. A 6B with AdamW states does not fit one GPU under DDP: use
# the -zero2 / -zero3 / -fsdp variants for real runs.
_base_ = './mask-rcnn_internvit-6b-simplefpn-frozen_8xb2-1x_coco.py'

# Windows of 14 x 14 tokens; 4 global blocks, the last of each quarter of the
# depth (ViTDet's spacing: 2, 5, 8, 11 for ViT-B), so the last block, which
# feeds the pyramid, sees the whole image.
model = dict(
    backbone=dict(
        frozen=False,
        dtype='float32',
        autocast_dtype='bfloat16',  # float32 weights for AdamW, bf16 compute in the ViT only
        with_cp=True,
        drop_path_rate=0.4,
        window_size=14,
        global_attn_indexes=[11, 23, 35, 47]),
    data_preprocessor=dict(
        batch_augments=[dict(type='BatchFixedSizePad', size=(1024, 1024), pad_mask=True)]))
optim_wrapper = dict(paramwise_cfg=dict(layer_decay_rate=0.95))

# Large-scale jitter, as mmdet 3.x's lsj-100e_coco-instance: resize to
# 0.1-2.0 x 1024, crop 1024 x 1024 (images are padded to it in the batch).
image_size = (1024, 1024)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='RandomResize', scale=image_size, ratio_range=(0.1, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_type='absolute_range', crop_size=image_size,
         recompute_bbox=True, allow_negative_crop=True),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1e-2, 1e-2)),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=image_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True, with_mask=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
train_dataloader = dict(batch_sampler=None, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader
