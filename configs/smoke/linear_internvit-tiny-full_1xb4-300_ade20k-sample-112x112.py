# Smoke full tuning: the smoke probe with a trainable backbone, layer decay and
# weight decay. Base of the distributed smoke configs (DeepSpeed, FSDP).
_base_ = './linear_internvit-tiny_1xb4-300_ade20k-sample-112x112.py'

model = dict(backbone=dict(frozen=False, drop_path_rate=0.1))
optim_wrapper = dict(optimizer=dict(lr=5e-4, weight_decay=0.05),
                     paramwise_cfg=dict(layer_decay_rate=0.9))
