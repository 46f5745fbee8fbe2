# Upstream InternViT schedule: AdamW 4e-5, poly decay (power 1, to 0) over all
# iterations with a linear warm-up from 1e-6 x lr over the first 1500. mmcv
# 1.x's lr_config=dict(policy='poly', warmup='linear') gives, at iteration t,
#   lr * (1 - t / max_iters) * (1e-6 + (1 - 1e-6) * min(t / warmup, 1)).
# mmengine multiplies overlapping schedulers, so LinearLR and PolyLR both from
# iteration 0 reproduce it; they reach their final value at step `end - 1`,
# hence the + 1s (full lr at iteration 1500, 0 at max_iters, as mmcv).
_base_ = 'mmseg::_base_/schedules/schedule_80k.py'

optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=4e-5, betas=(0.9, 0.999), weight_decay=0.0),
    constructor='mmseg_internvit.LayerDecayOptimWrapperConstructor',
    paramwise_cfg=dict(layer_decay_rate=1.0))
param_scheduler = [
    dict(type='LinearLR', start_factor=1e-6, by_epoch=False, begin=0, end=1500 + 1),
    dict(type='PolyLR', power=1.0, eta_min=0.0, by_epoch=False, begin=0, end=80000 + 1),
]
# Upstream validates and checkpoints every 1000 iterations, keeps the last two
# checkpoints and a best one (there save_best='auto', which mmcv 1.x resolves
# to the first metric, aAcc; here the best by mIoU). Saves are crash-safe: a
# kill while writing never costs the previous checkpoint.
train_cfg = dict(val_interval=1000)
default_hooks = dict(
    checkpoint=dict(type='mmseg_internvit.AtomicCheckpointHook', interval=1000,
                    max_keep_ckpts=2, save_best='mIoU', rule='greater'))
