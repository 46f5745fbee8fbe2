# Full tuning of InternViT-6B with PyTorch FSDP (fully sharded, bf16 compute,
# activation checkpointing by the strategy): fits 8 x 40 GB GPUs.
_base_ = ['./upernet_internvit-6b_8xb2-80k_ade20k-504x504.py', '../_base_/strategies/fsdp_bf16.py']

# The strategy checkpoints every block; the backbone must not do it again.
model = dict(backbone=dict(with_cp=False))
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.05),
    constructor='mmseg_internvit.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=0.95))
