"""InternViT architecture presets and how an ``arch`` argument becomes a full
arch dict (a preset name, a user dict, or ``'auto'`` read from a checkpoint)."""
from typing import TYPE_CHECKING, Dict, Union

if TYPE_CHECKING:  # the checkpoint package is imported only when 'auto' reads one
    from mmseg_internvit.checkpoint.readers import TensorSource

ARCH_KEYS = ('embed_dims', 'num_layers', 'num_heads', 'feedforward_channels',
             'qk_normalization', 'norm_type', 'qkv_bias', 'layer_scale_init',
             'pretrain_size')

ARCH_ZOO: Dict[str, dict] = {
    # InternViT-6B-224px.
    '6b': dict(embed_dims=3200, num_layers=48, num_heads=25, feedforward_channels=12800,
               qk_normalization=True, norm_type='rms', qkv_bias=False,
               layer_scale_init=0.1, pretrain_size=224),
    # InternViT-6B-448px-V1-2 / V1-5 / V2-5: same width, 45 layers. (V1-0 has
    # 48 layers at 448px: no preset, arch='auto' reads it from the checkpoint.)
    '6b-448': dict(embed_dims=3200, num_layers=45, num_heads=25, feedforward_channels=12800,
                   qk_normalization=True, norm_type='rms', qkv_bias=False,
                   layer_scale_init=0.1, pretrain_size=448),
    # InternViT-300M-448px.
    '300m': dict(embed_dims=1024, num_layers=24, num_heads=16, feedforward_channels=4096,
                 qk_normalization=False, norm_type='ln', qkv_bias=True,
                 layer_scale_init=1.0, pretrain_size=448),
}


def is_auto_arch(arch: Union[str, dict]) -> bool:
    """Whether ``arch`` asks for the architecture to be read from the checkpoint."""
    return arch == 'auto' or (isinstance(arch, dict) and bool(arch.get('auto')))


def resolve_arch(arch: Union[str, dict], checkpoint: Union[str, 'TensorSource', None] = None,
                 patch_size: int = 14) -> dict:
    """Return the full arch dict for a preset name, a user dict or ``'auto'``.

    ``'auto'`` (or a dict with ``auto=True`` plus the arch keys it fixes, e.g.
    ``num_heads``) reads the architecture from ``checkpoint`` (a path, or a
    checkpoint already opened).
    """
    if is_auto_arch(arch):
        if not checkpoint:
            raise ValueError("arch='auto' reads the architecture from the checkpoint: give "
                             "init_cfg=dict(type='Pretrained', checkpoint=PATH), or name the "
                             f'arch ({sorted(ARCH_ZOO)} or a dict with keys {ARCH_KEYS})')
        from mmseg_internvit.checkpoint.arch_detect import read_arch
        fixed = {k: v for k, v in arch.items() if k != 'auto'} if isinstance(arch, dict) else {}
        return resolve_arch(read_arch(checkpoint, patch_size, fixed))
    if isinstance(arch, str):
        if arch not in ARCH_ZOO:
            raise ValueError(f'Unknown InternViT arch {arch!r}; use one of '
                             f"{sorted(ARCH_ZOO)}, 'auto' or a dict with keys {ARCH_KEYS}")
        return dict(ARCH_ZOO[arch])
    missing = set(ARCH_KEYS) - set(arch)
    extra = set(arch) - set(ARCH_KEYS)
    if missing or extra:
        raise ValueError(f'InternViT arch dict must have exactly the keys {ARCH_KEYS}; '
                         f'missing {sorted(missing)}, unexpected {sorted(extra)}')
    return dict(arch)
