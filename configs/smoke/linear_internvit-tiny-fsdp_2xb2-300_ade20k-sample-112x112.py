# Smoke FSDP: one FSDP unit per InternViT block, full state dict checkpoints.
_base_ = './linear_internvit-tiny-full_1xb4-300_ade20k-sample-112x112.py'

runner_type = 'FlexibleRunner'
strategy = dict(
    # mmengine's FSDPStrategy with resume fixed for torch 2.x.
    type='mmseg_internvit.TorchCompatFSDPStrategy',
    state_dict_cfg='full',
    model_wrapper=dict(
        auto_wrap_policy=dict(type='mmseg_internvit.internvit_auto_wrap_policy'),
        use_orig_params=True))
train_dataloader = dict(batch_size=2)
