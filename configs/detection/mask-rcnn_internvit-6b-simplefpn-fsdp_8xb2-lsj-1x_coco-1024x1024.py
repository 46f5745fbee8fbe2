# Full tuning of InternViT-6B for detection with PyTorch FSDP (fully sharded,
# activation checkpointing by the strategy): fits 8 x 40 GB GPUs.
_base_ = [
    './mask-rcnn_internvit-6b-simplefpn_8xb2-lsj-1x_coco-1024x1024.py',
    '../_base_/strategies/fsdp_bf16.py'
]
# The strategy checkpoints every block; the backbone must not do it again.
# FSDP's bf16 mixed precision would run the heads in bf16 (see the -zero2
# config): weights stay float32 and the backbone autocasts to bf16 itself.
model = dict(backbone=dict(with_cp=False))
strategy = dict(model_wrapper=dict(mixed_precision=None))
