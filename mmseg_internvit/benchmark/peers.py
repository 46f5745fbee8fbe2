"""What a user would run instead of our backbone, on the same weights: transformers'
``InternVLVisionModel`` and the upstream segmentation code's ``InternViT6B``; and
our own backbone with compiled blocks.

Every peer is built around the parameters of one of our InternViTs: the same
``Parameter`` objects where the layout matches (``load_state_dict(assign=True)``),
views of our fused ``qkv`` for transformers' separate q/k/v projections. So no
weights are copied, a 6B peer costs no extra memory for its weights, and any
output difference comes from the code, not from the weights. Each peer returns
what our backbone returns, a tuple with the last block's patch tokens as a
float32 NCHW map, so the same benchmark steps time all of them.
"""
import contextlib
import importlib.util
import os
import sys
import types
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
import torch.nn as nn

from mmseg_internvit.checkpoint.key_maps import backbone_key_map
from mmseg_internvit.models.backbones.intern_vit import InternViT
from mmseg_internvit.models.layers import resize_pos_embed

PEERS = ('transformers', 'upstream')
# Largest |peer - ours| / max |ours| of the last block accepted before timing:
# the same arithmetic in another order (fused vs separate q/k/v GEMMs, other
# kernels) drifts by a few low-precision ulps per block.
TOLERANCE = {'float32': 1e-3, 'float16': 2e-2, 'bfloat16': 5e-2}
UPSTREAM_CLASS = 'InternViT6B'


class PeerUnavailable(RuntimeError):
    """A peer cannot be built here (missing package, unimportable file, unsupported arch)."""


def _to_map(tokens: torch.Tensor, height: int, width: int, patch: int = 14) -> torch.Tensor:
    """Patch tokens ``(B, 1 + h * w, C)`` (cls first) as a float32 ``(B, C, h, w)`` map."""
    patches = tokens[:, 1:]
    return patches.transpose(1, 2).reshape(tokens.shape[0], -1, height // patch,
                                           width // patch).float()


def compiled_twin(model: InternViT, **compile_kwargs) -> InternViT:
    """Another InternViT with ``model``'s very parameters and compiled blocks.

    Built on the meta device (no memory) and given ``model``'s ``Parameter``
    objects, so eager and compiled runs of the same weights sit side by side.

    Args:
        model: The eager backbone.
        **compile_kwargs: See :meth:`InternViT.compile_blocks`.
    """
    with torch.device('meta'):
        twin = InternViT(arch=model.arch_settings, patch_size=model.patch_size,
                         out_indices=model.out_indices, frozen=model.frozen,
                         with_cp=model.with_cp, dtype=str(model.dtype).split('.')[-1],
                         pos_embed_grid=model.pretrain_grid[0], window_size=model.window_size,
                         global_attn_indexes=model.global_attn_indexes)
    twin.load_state_dict(model.state_dict(keep_vars=True), assign=True)
    for src, dst in zip(model.modules(), twin.modules()):
        for name in ('attn_impl', 'window_size'):
            if hasattr(src, name):
                setattr(dst, name, getattr(src, name))
    twin.compile_blocks(**compile_kwargs)
    return twin


class TransformersPeer(nn.Module):
    """transformers' ``InternVLVisionModel`` (sdpa attention) on our backbone's weights.

    Args:
        ours: The backbone whose parameters it uses (square pretraining grid).
        with_cp: transformers' gradient checkpointing (non-reentrant, as ours).
        attn_implementation: transformers' attention kernel name.
    """

    def __init__(self, ours: InternViT, with_cp: bool = False,
                 attn_implementation: str = 'sdpa') -> None:
        super().__init__()
        try:
            from transformers import InternVLVisionConfig, InternVLVisionModel
        except ImportError as exc:
            raise PeerUnavailable(f'--peer transformers needs the transformers package with '
                                  f'InternVLVisionModel (transformers >= 4.52): {exc}') from exc
        s = ours.arch_settings
        config = InternVLVisionConfig(
            hidden_size=s['embed_dims'], num_hidden_layers=s['num_layers'],
            num_attention_heads=s['num_heads'], intermediate_size=s['feedforward_channels'],
            use_qk_norm=s['qk_normalization'],
            norm_type='rms_norm' if s['norm_type'] == 'rms' else 'layer_norm',
            attention_bias=s['qkv_bias'], layer_scale_init_value=s['layer_scale_init'],
            image_size=ours.pretrain_grid[0] * ours.patch_size, patch_size=ours.patch_size,
            layer_norm_eps=1e-6, use_mean_pooling=True)  # mean pooling: no final norm
        config._attn_implementation = attn_implementation
        with torch.device('meta'):
            self.model = InternVLVisionModel(config)
        self.model.load_state_dict(_transformers_state(ours, self.model), assign=True)
        if with_cp:
            kwargs = dict(use_reentrant=False)
            if hasattr(self.model, 'activation_checkpointing_enable'):  # transformers >= 5.24
                self.model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
            else:
                self.model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
        self.dtype = ours.pos_embed.dtype

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor]:
        tokens = self.model(pixel_values=images.to(self.dtype)).last_hidden_state
        return (_to_map(tokens, *images.shape[-2:]),)


def _transformers_state(ours: InternViT, peer: nn.Module) -> Dict[str, torch.Tensor]:
    """transformers' state dict made of our parameters (q/k/v as views of ``qkv``).

    The checkpoint module's map from transformers' names to ours, read backwards.
    """
    key_map = backbone_key_map(peer.state_dict().keys())
    params = dict(ours.named_parameters())
    state = {}
    for our_name, theirs in key_map.mapping.items():
        if isinstance(theirs, str):
            state[theirs] = params[our_name]
            continue
        # One fused tensor, rows q, k, v: each projection gets its rows (a view).
        fused = params[our_name]
        for key, rows in zip(theirs, fused.detach().chunk(len(theirs), dim=0)):
            state[key] = nn.Parameter(rows, requires_grad=fused.requires_grad)
    return state


# What the upstream file imports from mmcv 1.x / mmseg 0.x (module: name), which
# mmcv 2 and mmseg 1 no longer have.
MM0_NAMES = {'mmcv.runner': 'BaseModule', 'mmseg.models.builder': 'BACKBONES',
             'mmseg.utils': 'get_root_logger'}


@contextlib.contextmanager
def _mm0_names() -> Iterator[None]:
    """Give the names of :data:`MM0_NAMES` to imports made inside the block.

    They are mmengine's BaseModule (mmcv.runner's, moved), a registry of their
    own (the class is taken from the module, so mmseg's registry is left
    alone) and mmengine's logger. Each module name maps to a stand-in module
    in ``sys.modules`` (a dotted name found there is not looked up further),
    and the previous entries are put back afterwards.
    """
    from mmengine.logging import MMLogger
    from mmengine.model import BaseModule
    from mmengine.registry import Registry
    values = {'BaseModule': BaseModule, 'BACKBONES': Registry('upstream backbones'),
              'get_root_logger': lambda *args, **kwargs: MMLogger.get_current_instance()}
    saved = {name: sys.modules.get(name) for name in MM0_NAMES}
    for name, attribute in MM0_NAMES.items():
        sys.modules[name] = types.ModuleType(name)
        setattr(sys.modules[name], attribute, values[attribute])
    try:
        yield
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module


def load_upstream_class(path: str) -> type:
    """``InternViT6B`` from a file of InternVL's segmentation code, imported as it is.

    The file is written for mmcv 1.x and mmseg 0.x; the three names it takes
    from them (:data:`MM0_NAMES`) are given their mmengine equivalents while it
    is imported, so it runs beside mmcv 2 / mmseg 1, or with neither installed.

    Args:
        path: ``segmentation/mmseg_custom/models/backbones/intern_vit_6b.py`` of
            an InternVL checkout.

    Raises:
        PeerUnavailable: the file is missing, does not define the class, or
            imports something else that is not installed here.
    """
    if not os.path.isfile(path):
        raise PeerUnavailable(f'--peer-file {path} does not exist: give the path of InternVL\'s '
                              'segmentation/mmseg_custom/models/backbones/intern_vit_6b.py')
    spec = importlib.util.spec_from_file_location('upstream_intern_vit_6b', path)
    module = importlib.util.module_from_spec(spec)
    try:
        with _mm0_names():
            spec.loader.exec_module(module)
    except ImportError as exc:
        raise PeerUnavailable(
            f'the upstream InternViT-6B code in {path} cannot be imported with this Python\'s '
            f'packages ({type(exc).__name__}: {exc}). Of mmcv 1.x / mmseg 0.x only '
            f"{', '.join(f'{m}.{a}' for m, a in MM0_NAMES.items())} are provided for it; "
            'install what else it needs, or run it in the upstream segmentation environment '
            '(mmcv-full 1.x, mmseg 0.x, plus torch, timm and mmengine) with this repository '
            'on PYTHONPATH.') from exc
    cls = getattr(module, UPSTREAM_CLASS, None)
    if not isinstance(cls, type):
        raise PeerUnavailable(f'{path} defines no class {UPSTREAM_CLASS}: is it '
                              'segmentation/mmseg_custom/models/backbones/intern_vit_6b.py?')
    return cls


class UpstreamPeer(nn.Module):
    """The upstream segmentation code's ``InternViT6B`` on our backbone's weights.

    Its position embedding is a fixed grid added as it is, so it runs square
    inputs whose side is a multiple of 14 and :meth:`prepare` gives it our
    embedding resized to each input size (our resize; the rest is its code).
    Its blocks are timm-named like ours and share our parameters.

    Args:
        ours: The backbone whose parameters it uses (RMSNorm arch).
        upstream_class: ``InternViT6B`` from :func:`load_upstream_class`.
        with_cp: Its per-block activation checkpointing.
    """

    def __init__(self, ours: InternViT, upstream_class: type, with_cp: bool = False) -> None:
        super().__init__()
        s = ours.arch_settings
        if s['norm_type'] != 'rms':
            raise PeerUnavailable('the upstream InternViT6B always uses RMSNorm; --arch has '
                                  f"norm_type={s['norm_type']!r} (use a 6B-style arch)")
        side = ours.pretrain_grid[0] * ours.patch_size
        # use_flash_attn=[]: the class turns a bool into one flag per block and
        # tests that list's truth, so False becomes [False, ...] (true) and asks
        # for FlashAttention, which a file loaded by path cannot import (its
        # relative import). An empty list is the value that selects its own
        # attention; that is how the upstream peer runs: without flash-attn.
        try:
            # Built where ours lives: its constructor writes random weights that
            # are replaced by ours at once.
            with torch.device(ours.pos_embed.device):
                model = upstream_class(
                    in_chans=3, patch_size=ours.patch_size, img_size=side, pretrain_size=side,
                    qkv_bias=s['qkv_bias'], drop_path_rate=0.0, embed_dim=s['embed_dims'],
                    num_heads=s['num_heads'],
                    mlp_ratio=s['feedforward_channels'] / s['embed_dims'],
                    init_values=s['layer_scale_init'], qk_normalization=s['qk_normalization'],
                    depth=s['num_layers'], use_flash_attn=[], with_cp=with_cp,
                    out_indices=[s['num_layers'] - 1], pretrained=None)
        except TypeError as exc:
            raise PeerUnavailable(f'{UPSTREAM_CLASS} does not take the arguments of InternVL\'s '
                                  f'segmentation code ({exc}); is --peer-file that file?') from exc
        state = ours.state_dict(keep_vars=True)
        model.load_state_dict(state, assign=True, strict=True)
        self.model = model
        self.ours = [ours]  # a list: not registered, so its parameters are not counted twice
        self.grid: Optional[Tuple[int, int]] = None

    def prepare(self, height: int, width: int) -> None:
        """Give the peer our position embedding resized to a ``height x width`` input."""
        ours = self.ours[0]
        grid = (height // ours.patch_size, width // ours.patch_size)
        if grid == self.grid:
            return
        with torch.no_grad():
            pos = ours.pos_embed
            resized = torch.cat([pos[:, :1], resize_pos_embed(pos[:, 1:], ours.pretrain_grid,
                                                              grid)], dim=1)
        self.model.pos_embed = nn.Parameter(resized, requires_grad=pos.requires_grad)
        self.grid = grid

    def forward(self, images: torch.Tensor) -> Tuple[torch.Tensor]:
        return (self.model(images)[-1].float(),)


def build_peer(name: str, ours: InternViT, with_cp: bool = False,
               upstream_file: Optional[str] = None) -> nn.Module:
    """A peer of :data:`PEERS` on ``ours``'s weights.

    Args:
        name: ``'transformers'`` or ``'upstream'``.
        ours: Our backbone (its parameters are shared, not copied).
        with_cp: The peer's own activation checkpointing.
        upstream_file: The upstream ``intern_vit_6b.py`` (``'upstream'``).
    """
    if name == 'transformers':
        return TransformersPeer(ours, with_cp)
    if name == 'upstream':
        return UpstreamPeer(ours, load_upstream_class(upstream_file), with_cp)
    raise ValueError(f'peer must be one of {PEERS}, got {name!r}')


def last_output(model: Callable, images: torch.Tensor, grad: bool) -> torch.Tensor:
    """The last output map of ``model`` in float32, run with or without autograd
    recording (as the train or the forward step does)."""
    with torch.set_grad_enabled(grad):
        return model(images)[-1].detach().float()


def max_difference(expected: torch.Tensor, got: torch.Tensor) -> Tuple[float, float]:
    """``(max |got - expected|, max |expected|)``: a variant's last output against
    our eager backbone's."""
    return (got - expected).abs().max().item(), expected.abs().max().item()
