# Mask R-CNN 1x on COCO (1333 x 800): the last block of a frozen InternViT-6B
# -> SimpleFPN (deconvolutions / max-pool to 4 levels) -> mmdet's FPN, the
# neck layout of the PIIP InternViT-6B baseline. Only neck and heads train.
_base_ = './_base_/mask-rcnn_internvit.py'

# Patch-14 tokens put the simple pyramid at strides 3.5, 7, 14 and 28 px (FPN's
# extra max-pool level at 56), not mmdet's 4..64: anchors and RoI pooling use
# the real strides, and base_sizes keep mmdet's anchor sizes (32..512 px).
strides = [3.5, 7, 14, 28, 56]
model = dict(
    backbone=dict(
        type='mmseg_internvit.InternViT',
        arch='6b',
        out_indices=[-1],
        frozen=True,
        dtype='bfloat16',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
    neck=[
        dict(type='mmseg_internvit.SimpleFPN', in_channels=3200, num_inputs=1),
        dict(type='FPN', in_channels=[3200] * 4, out_channels=256, num_outs=5),
    ],
    rpn_head=dict(anchor_generator=dict(strides=strides, base_sizes=[4, 8, 16, 32, 64])),
    roi_head=dict(
        bbox_roi_extractor=dict(featmap_strides=strides[:4]),
        mask_roi_extractor=dict(featmap_strides=strides[:4])))
