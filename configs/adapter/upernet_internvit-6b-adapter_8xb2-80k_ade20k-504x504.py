# ViT-Adapter on frozen InternViT-6B + UPerHead (upstream, 512 crop: 58.1 mIoU).
# Patch 14 is kept: the deformable attention bridges the 36x36 token grid and
# the SPM's 63/32/16 grids (see InternViTAdapter's docstring).
_base_ = '../internvit_6b/upernet_internvit-6b-frozen_8xb2-80k_ade20k-504x504.py'

norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    backbone=dict(
        _delete_=True,
        type='mmseg_internvit.InternViTAdapter',
        vit=dict(
            arch='6b',
            frozen=True,
            # Frozen blocks still keep activations for the adapter's backward.
            with_cp=True,
            dtype='bfloat16',
            init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
        interaction_indexes=[[0, 11], [12, 23], [24, 35], [36, 47]],
        deform_num_heads=None,  # the ViT's heads: 25, as upstream
        n_points=4,
        deform_ratio=0.25,
        cffn_ratio=0.25,
        init_values=0.0,
        num_extra_extractors=2,
        with_cp=True,
        norm_cfg=norm_cfg,
        out_norm_cfg=norm_cfg),
    neck=None,
    decode_head=dict(in_channels=[3200, 3200, 3200, 3200]),
    # ViT-Adapter's UPerNet configs keep upernet_r50's auxiliary head (level 2,
    # 256 channels), not the 1536-channel one of InternViT's head tuning.
    auxiliary_head=dict(in_channels=3200, in_index=2, channels=256))
