# InternViT-300M (24 blocks, width 1024) in place of the 6B: the model entries the
# configs of configs/internvit_300m/ change in the 6B configs they inherit, kept
# here once. They are variables, not `model`: a second base may not set a key its
# 6B config sets, so each config writes `model = {{_base_.internvit_300m_upernet}}`.
internvit_300m_checkpoint = 'pretrained/InternViT-300M-448px'
# Linear probe on the last block.
internvit_300m_probe = dict(
    backbone=dict(arch='300m', out_indices=[-1],
                  init_cfg=dict(checkpoint=internvit_300m_checkpoint)),
    decode_head=dict(in_channels=1024))
# UPerNet on blocks 5, 11, 17, 23 with a 768-channel UPerHead (at the 6B's 1536
# its fusion conv would cost almost four times the backbone: docs/recipes.md).
internvit_300m_upernet = dict(
    backbone=dict(arch='300m', out_indices=[5, 11, 17, 23],
                  init_cfg=dict(checkpoint=internvit_300m_checkpoint)),
    neck=dict(in_channels=1024),
    decode_head=dict(in_channels=[1024, 1024, 1024, 1024], channels=768),
    auxiliary_head=dict(in_channels=1024))
