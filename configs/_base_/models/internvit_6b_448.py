# InternViT-6B-448px-V1-5 (45 blocks) in place of the 6B-224px: the model entries
# the configs of configs/internvit_6b_448/ change in the 6B configs they inherit,
# kept here once. They are variables, not `model`: a second base may not set a key
# its 6B config sets, so each config writes `model = {{_base_.internvit_6b_448_upernet}}`.
internvit_6b_448_checkpoint = 'pretrained/InternViT-6B-448px-V1-5'
# Linear probe on block 44, the last.
internvit_6b_448_probe = dict(
    backbone=dict(arch='6b-448', out_indices=[-1],
                  init_cfg=dict(checkpoint=internvit_6b_448_checkpoint)))
# UPerNet on blocks 11, 22, 33, 44.
internvit_6b_448_upernet = dict(
    backbone=dict(arch='6b-448', out_indices=[11, 22, 33, 44],
                  init_cfg=dict(checkpoint=internvit_6b_448_checkpoint)))
