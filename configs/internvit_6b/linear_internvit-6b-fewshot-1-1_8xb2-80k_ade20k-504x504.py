# Few-shot recipe on all of ADE20K train (upstream: 57.2 mIoU): the whole
# InternViT-6B is fine-tuned with the linear head on its last block. The
# 1/16..1/2 configs inherit this file.
# Full tuning of the 6B needs its AdamW states sharded: DeepSpeed ZeRO-2, bf16
# with fp32 master weights, as upernet_internvit-6b-zero2_*: 8 x 80 GB GPUs
# (README, "Scaling out"). Launch: tools/dist_train.sh CONFIG 8
_base_ = [
    './linear_internvit-6b_8xb2-80k_ade20k-504x504.py', '../_base_/strategies/deepspeed_bf16.py'
]

model = dict(
    backbone=dict(frozen=False, dtype='float32', drop_path_rate=0.4, with_cp=True,
                  out_indices=[-1]))
optim_wrapper = dict(
    type='mmseg_internvit.DeepSpeedNoGradStepOptimWrapper', optimizer=dict(weight_decay=0.05),
    paramwise_cfg=dict(layer_decay_rate=0.95))
