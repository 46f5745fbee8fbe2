# Full tuning of InternViT-6B for detection with DeepSpeed ZeRO-2 (optimizer
# states and gradients sharded): 8 x 80 GB GPUs. Launch: tools/dist_train.sh CONFIG 8
_base_ = [
    './mask-rcnn_internvit-6b-simplefpn_8xb2-lsj-1x_coco-1024x1024.py',
    '../_base_/strategies/deepspeed_bf16.py'
]
# DeepSpeed's bf16 mode would cast the whole detector, but mmcv's RoIAlign has
# no bf16 kernel and bf16 anchor coordinates lose whole pixels: the engine
# keeps float32 weights and the backbone computes in bf16 itself
# (autocast_dtype), so the heads stay float32.
strategy = dict(bf16=dict(enabled=False))
optim_wrapper = dict(type='mmseg_internvit.DeepSpeedNoGradStepOptimWrapper')
