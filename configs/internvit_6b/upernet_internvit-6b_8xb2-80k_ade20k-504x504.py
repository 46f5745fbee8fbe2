# Full tuning on one node with plain DDP + bf16 autocast (upstream: 58.9 mIoU).
# A 6B model with AdamW states does not fit one 80 GB GPU: see the ZeRO / FSDP
# variants in configs/internvit_6b/full_tuning_* for real runs.
_base_ = './upernet_internvit-6b-frozen_8xb2-80k_ade20k-504x504.py'

model = dict(
    backbone=dict(frozen=False, dtype='float32', drop_path_rate=0.4, with_cp=True))
optim_wrapper = dict(
    type='AmpOptimWrapper', dtype='bfloat16', paramwise_cfg=dict(layer_decay_rate=0.95))
