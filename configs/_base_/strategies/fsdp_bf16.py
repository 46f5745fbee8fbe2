# PyTorch FSDP through mmengine's FlexibleRunner: one FSDP unit per InternViT
# block, bf16 compute with fp32 reductions, activation checkpointing applied
# by the strategy to every block, whole-model checkpoints on rank 0.
runner_type = 'FlexibleRunner'
strategy = dict(
    type='mmseg_internvit.TorchCompatFSDPStrategy',
    state_dict_cfg='full',
    model_wrapper=dict(
        auto_wrap_policy=dict(type='mmseg_internvit.internvit_auto_wrap_policy'),
        use_orig_params=True,
        limit_all_gathers=True,
        mixed_precision=dict(
            param_dtype='bfloat16', reduce_dtype='float32', buffer_dtype='float32')),
    activation_checkpointing=dict(check_fn='mmseg_internvit.is_internvit_block'))
