# DeepSpeed through mmengine's FlexibleRunner: bf16 weights and activations,
# fp32 master weights and AdamW states partitioned by ZeRO (stage set by the
# config that inherits this). 2 images per GPU as in the upstream recipe.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='DeepSpeedStrategy',
    zero_optimization=dict(
        stage=2,
        overlap_comm=True,
        contiguous_gradients=True,
        reduce_bucket_size=5e8,
        allgather_bucket_size=5e8),
    bf16=dict(enabled=True),
    train_micro_batch_size_per_gpu=2,
    gradient_accumulation_steps=1)
