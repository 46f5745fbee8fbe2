# Full tuning with ZeRO-3 (weights sharded too): fits 8 x 40 GB GPUs.
_base_ = './mask-rcnn_internvit-6b-simplefpn-zero2_8xb2-lsj-1x_coco-1024x1024.py'

strategy = dict(
    zero_optimization=dict(
        stage=3, stage3_prefetch_bucket_size=5e8, stage3_param_persistence_threshold=1e6))
