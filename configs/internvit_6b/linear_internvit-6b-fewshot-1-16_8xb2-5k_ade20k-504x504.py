# Few-shot: full tuning with a linear head on block 48, trained on a fixed 1/16
# of ADE20K train (upstream: 46.5 mIoU). The image lists ship in
# configs/_base_/datasets/ade20k_few_shot/ (tools/dataset/make_few_shot_splits.py).
_base_ = './linear_internvit-6b_8xb2-80k_ade20k-504x504.py'

model = dict(
    backbone=dict(frozen=False, dtype='float32', drop_path_rate=0.4, with_cp=True,
                  out_indices=[-1]))
train_dataloader = dict(dataset=dict(
    ann_file='{{ fileDirname }}/../_base_/datasets/ade20k_few_shot/train_1-16.txt'))
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', optimizer=dict(weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.95))
train_cfg = dict(max_iters=5000, val_interval=500)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=1500, end=5000),
]
