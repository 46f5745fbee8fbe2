# As the 300M 1x full-tuning config, trained 36 epochs (lr x 0.1 after 27 and 33).
_base_ = './mask-rcnn_internvit-300m-simplefpn_8xb2-lsj-1x_coco-1024x1024.py'

train_cfg = dict(max_epochs=36)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=500),
    dict(type='MultiStepLR', begin=0, end=36, by_epoch=True, milestones=[27, 33], gamma=0.1),
]
