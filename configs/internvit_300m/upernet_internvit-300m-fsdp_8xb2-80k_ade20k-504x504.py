# As ../internvit_6b/upernet_internvit-6b-fsdp_8xb2-80k_ade20k-504x504.py with InternViT-300M.
_base_ = ['../internvit_6b/upernet_internvit-6b-fsdp_8xb2-80k_ade20k-504x504.py',
          '../_base_/models/internvit_300m.py']

model = {{_base_.internvit_300m_upernet}}
