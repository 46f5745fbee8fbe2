# Smoke DeepSpeed ZeRO-3: parameters, gradients and optimizer states sharded
# across 2 processes (fp32 here so that sharded and consolidated models can be
# compared exactly; the 6B configs add bf16=dict(enabled=True)).
_base_ = './linear_internvit-tiny-zero2_2xb2-300_ade20k-sample-112x112.py'

strategy = dict(zero_optimization=dict(stage=3))
