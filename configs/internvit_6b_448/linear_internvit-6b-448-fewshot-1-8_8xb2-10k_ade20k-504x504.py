# As ../internvit_6b/linear_internvit-6b-fewshot-1-8_8xb2-10k_ade20k-504x504.py with InternViT-6B-448px-V1-5.
_base_ = ['../internvit_6b/linear_internvit-6b-fewshot-1-8_8xb2-10k_ade20k-504x504.py',
          '../_base_/models/internvit_6b_448.py']

model = {{_base_.internvit_6b_448_probe}}
