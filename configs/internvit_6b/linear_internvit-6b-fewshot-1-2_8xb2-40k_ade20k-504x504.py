# Few-shot on a fixed 1/2 of ADE20K train, 40k iterations (upstream: 55.8 mIoU).
_base_ = './linear_internvit-6b-fewshot-1-16_8xb2-5k_ade20k-504x504.py'

train_dataloader = dict(dataset=dict(
    ann_file='{{ fileDirname }}/../_base_/datasets/ade20k_few_shot/train_1-2.txt'))
train_cfg = dict(max_iters=40000)
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=800 + 1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=40000 + 1),
]
