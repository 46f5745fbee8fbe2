# Smoke DeepSpeed ZeRO-2 (fp32 so it can be compared with single-process
# training): 2 processes x 2 images. Launch with tools/dist_train.sh CONFIG 2.
_base_ = './linear_internvit-tiny-full_1xb4-300_ade20k-sample-112x112.py'

runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(stage=2),
    train_micro_batch_size_per_gpu=2,
    gradient_accumulation_steps=1)
optim_wrapper = dict(type='mmseg_internvit.DeepSpeedNoGradStepOptimWrapper')
train_dataloader = dict(batch_size=2)
