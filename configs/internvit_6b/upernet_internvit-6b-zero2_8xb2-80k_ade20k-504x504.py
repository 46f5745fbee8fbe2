# Full tuning of InternViT-6B with DeepSpeed ZeRO-2 (optimizer states and
# gradients sharded; each GPU holds the bf16 weights): 8 x 80 GB GPUs.
# Launch: tools/dist_train.sh CONFIG 8
_base_ = [
    './upernet_internvit-6b_8xb2-80k_ade20k-504x504.py', '../_base_/strategies/deepspeed_bf16.py'
]
optim_wrapper = dict(
    _delete_=True,
    type='mmseg_internvit.DeepSpeedNoGradStepOptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmseg_internvit.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))
