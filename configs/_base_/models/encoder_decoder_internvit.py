# What every InternViT segmentor shares: the plugin, ImageNet normalisation at
# the 504 crop (36 x 14 tokens), a frozen bf16 InternViT-6B-224px and
# upstream's sliding-window test (crop 504, stride 322). The linear-probe and
# UPerNet bases add their heads.
custom_imports = dict(imports=['mmseg_internvit.plugin'], allow_failed_imports=False)
norm_cfg = dict(type='SyncBN', requires_grad=True)
data_preprocessor = dict(
    type='SegDataPreProcessor',
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    bgr_to_rgb=True,
    pad_val=0,
    seg_pad_val=255,
    size=(504, 504))
model = dict(
    type='EncoderDecoder',
    data_preprocessor=data_preprocessor,
    backbone=dict(
        type='mmseg_internvit.InternViT',
        arch='6b',
        frozen=True,
        dtype='bfloat16',
        init_cfg=dict(type='Pretrained', checkpoint='pretrained/InternViT-6B-224px')),
    train_cfg=dict(),
    test_cfg=dict(mode='slide', crop_size=(504, 504), stride=(322, 322)))
