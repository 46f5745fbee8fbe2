"""The one explicit call that registers this package with OpenMMLab 2.x.

Importing ``mmseg_internvit`` (or any module of it) only defines things.
:func:`register_all_modules` does everything that changes the process, once:

- names DeepSpeed's accelerator on machines without one, before DeepSpeed
  is imported, so DeepSpeed does not print its "Setting accelerator to CPU"
  warning (a user's own ``DS_ACCELERATOR`` wins);
- lets mmengine import DeepSpeed at its first use, not with its runner
  (:mod:`mmseg_internvit.deferred_deepspeed`: ~2.3 s of every tool's start);
- lets mmengine's ``DeepSpeedStrategy`` be built more than once in a
  process (:mod:`mmseg_internvit.deepspeed_optimizers_once`);
- imports every module whose classes register in the ``mmseg_internvit``
  scope (the mmseg/mmdet/mmcv-based ones only where those are installed);
- lists those classes in mmseg's and mmdet's registries too, so their
  configs may say ``type='InternViT'``;
- allow-lists the globals of mmengine's own checkpoints for torch's safe
  ``weights_only`` loading;
- teaches mmengine's checkpoint loader ``.safetensors`` files and the
  segmentors released with InternViT-6B.

Configs call it through ``custom_imports=dict(imports=['mmseg_internvit.plugin'])``;
the tools and :class:`~mmseg_internvit.inference.Segmenter` call it directly.
"""
import importlib
import os
from importlib.util import find_spec

# Modules that define registered classes, with the library each one needs.
_REGISTERING_MODULES = (
    ('mmseg_internvit.models.backbones.intern_vit', None),
    ('mmseg_internvit.models.necks.simple_fpn', None),
    ('mmseg_internvit.models.backbones.vit_adapter', 'mmcv'),
    ('mmseg_internvit.models.heads.linear_head', 'mmseg'),
    ('mmseg_internvit.models.segmentors.batched_slide', 'mmseg'),
    ('mmseg_internvit.datasets.label_check', 'mmcv'),
    ('mmseg_internvit.datasets.short_side_resize', 'mmcv'),
    ('mmseg_internvit.datasets.coco_format', 'mmdet'),
    ('mmseg_internvit.engine', None),
)
_done = False


def register_all_modules() -> None:
    """Register this package's modules and mmengine/torch adaptations (idempotent)."""
    global _done
    if _done:
        return
    prepare_checkpoint_io()
    from .deferred_deepspeed import defer_deepspeed_for_mmengine
    defer_deepspeed_for_mmengine()
    from .deepspeed_optimizers_once import register_deepspeed_optimizers_once
    register_deepspeed_optimizers_once()
    for module, needs in _REGISTERING_MODULES:
        if needs is None or find_spec(needs) is not None:
            importlib.import_module(module)
    from .checkpoint.mmengine_loader import register_safetensors_loader
    from .registry import register_into_default_scopes
    register_safetensors_loader()
    register_into_default_scopes()
    _done = True


def prepare_checkpoint_io() -> None:
    """The part of :func:`register_all_modules` that reading and writing checkpoint
    files needs, and all that ``tools/convert_checkpoint.py`` and
    ``tools/consolidate_checkpoint.py`` do before they run (idempotent).

    DeepSpeed's accelerator is named before a DeepSpeed folder's reader imports
    DeepSpeed, and mmengine's checkpoint globals are allow-listed for torch's
    safe loading. Nothing is registered: those tools build no mmseg or mmdet
    model, and importing those libraries cost each run ~3.5 s (converting a tiny
    ``.pth``: 9.9-11.6 s with them, 6.7-7.6 s without, on a 2-core CPU machine,
    2026-11-28).
    """
    name_cpu_accelerator_for_deepspeed()
    from .checkpoint.safe_globals import allow_mmengine_checkpoint_globals
    allow_mmengine_checkpoint_globals()


def name_cpu_accelerator_for_deepspeed() -> None:
    """Set ``DS_ACCELERATOR=cpu`` where torch sees no accelerator and the user set none.

    DeepSpeed (imported by mmengine's DeepSpeed strategy when a config uses it,
    or to read a DeepSpeed folder) warns "Setting accelerator to CPU ..." on
    every machine without a GPU. Stating the accelerator it would pick anyway keeps it quiet.
    """
    if 'DS_ACCELERATOR' in os.environ:
        return
    import torch
    if torch.cuda.is_available() or torch.backends.mps.is_available():
        return
    xpu = getattr(torch, 'xpu', None)
    if xpu is not None and xpu.is_available():
        return
    os.environ['DS_ACCELERATOR'] = 'cpu'
