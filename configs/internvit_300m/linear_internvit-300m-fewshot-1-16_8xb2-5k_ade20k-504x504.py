# As ../internvit_6b/linear_internvit-6b-fewshot-1-16_8xb2-5k_ade20k-504x504.py with InternViT-300M.
_base_ = '../internvit_6b/linear_internvit-6b-fewshot-1-16_8xb2-5k_ade20k-504x504.py'

model = dict(
    backbone=dict(arch='300m', init_cfg=dict(checkpoint='pretrained/InternViT-300M-448px')),
    decode_head=dict(in_channels=1024))
# 300M under plain DDP + bf16 autocast, not the 6B's ZeRO-2: fp32 weights,
# gradients and AdamW states take 16 bytes x 0.3e9 = 4.8 GB per GPU, so nothing
# needs sharding, and checkpoints stay single files.
runner_type = 'Runner'
strategy = None
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
