# As ../internvit_6b/linear_internvit-6b-fewshot-1-16_8xb2-5k_ade20k-504x504.py with InternViT-300M.
_base_ = ['../internvit_6b/linear_internvit-6b-fewshot-1-16_8xb2-5k_ade20k-504x504.py',
          '../_base_/models/internvit_300m.py']

model = {{_base_.internvit_300m_probe}}
# Plain DDP + bf16 autocast, not the 6B's ZeRO-2: 4.8 GB of fp32 weights, gradients
# and AdamW states need no sharding (docs/recipes.md).
runner_type = 'Runner'
strategy = None
optim_wrapper = dict(type='AmpOptimWrapper', dtype='bfloat16')
