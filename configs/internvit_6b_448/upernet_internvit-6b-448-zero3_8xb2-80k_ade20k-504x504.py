# As ./upernet_internvit-6b-448-zero2_8xb2-80k_ade20k-504x504.py with ZeRO-3.
_base_ = './upernet_internvit-6b-448-zero2_8xb2-80k_ade20k-504x504.py'

strategy = dict(
    zero_optimization=dict(
        stage=3, stage3_prefetch_bucket_size=5e8, stage3_param_persistence_threshold=1e6))
