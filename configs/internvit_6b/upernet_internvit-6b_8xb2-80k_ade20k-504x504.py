# Full tuning on one node with plain DDP + bf16 autocast (upstream: 58.9 mIoU).
# A 6B model with fp32 AdamW states does not fit 80 GB GPUs this way: use the
# -zero1/-zero2/-zero3/-fsdp variants beside this file for real runs.
_base_ = './upernet_internvit-6b-frozen_8xb2-80k_ade20k-504x504.py'

model = dict(
    backbone=dict(frozen=False, dtype='float32', drop_path_rate=0.4, with_cp=True),
    # Upstream's full tuning keeps upernet_r50's auxiliary level 2 (block 35).
    auxiliary_head=dict(in_index=2))
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', paramwise_cfg=dict(layer_decay_rate=0.95))
