# As ./upernet_internvit-300m-zero2_8xb2-80k_ade20k-504x504.py with ZeRO-1.
_base_ = './upernet_internvit-300m-zero2_8xb2-80k_ade20k-504x504.py'

strategy = dict(zero_optimization=dict(stage=1))
