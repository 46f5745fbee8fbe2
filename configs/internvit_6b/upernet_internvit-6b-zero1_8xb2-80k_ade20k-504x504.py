# Full tuning with ZeRO-1 (optimizer states sharded only): needs more memory
# per GPU than ZeRO-2; kept for comparison and for clusters where ZeRO-2's
# gradient partitioning is slow.
_base_ = './upernet_internvit-6b-zero2_8xb2-80k_ade20k-504x504.py'

strategy = dict(zero_optimization=dict(stage=1))
