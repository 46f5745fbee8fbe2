# Linear probe, frozen InternViT-6B-224px, block 44 of 48 (upstream: 47.2 mIoU).
_base_ = [
    '../_base_/models/linear_probe_internvit.py', '../_base_/datasets/ade20k_504x504.py',
    '../_base_/default_runtime.py', '../_base_/schedules/adamw_layer_decay_80k.py'
]
