# Smoke DeepSpeed ZeRO-3 in bf16: parameters, gradients and optimizer states
# sharded across 2 processes.
_base_ = './linear_internvit-tiny-zero2_2xb2-300_ade20k-sample-112x112.py'

strategy = dict(zero_optimization=dict(stage=3), bf16=dict(enabled=True))
