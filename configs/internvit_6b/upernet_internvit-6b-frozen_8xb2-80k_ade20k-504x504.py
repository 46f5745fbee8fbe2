# Head tuning: frozen InternViT-6B + SimpleFPN + UPerHead (upstream: 54.9 mIoU).
_base_ = [
    '../_base_/models/upernet_internvit.py', '../_base_/datasets/ade20k_504x504.py',
    '../_base_/default_runtime.py', '../_base_/schedules/adamw_layer_decay_80k.py'
]
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
