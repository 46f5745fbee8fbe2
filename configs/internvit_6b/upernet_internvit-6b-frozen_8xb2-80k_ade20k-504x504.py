# Head tuning: frozen InternViT-6B + SimpleFPN + UPerHead (upstream: 54.9 mIoU).
_base_ = [
    '../_base_/models/upernet_internvit.py', '../_base_/datasets/ade20k_504x504.py',
    '../_base_/default_runtime.py', '../_base_/schedules/adamw_layer_decay_80k.py'
]
# Upstream's head tuning reads the auxiliary head from pyramid level 1 (block 23).
model = dict(auxiliary_head=dict(in_index=1))
optim_wrapper = dict(optimizer=dict(weight_decay=0.05))
