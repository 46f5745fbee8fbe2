"""Import this module before anything that imports ``mmengine.runner``.

mmengine's runner imports DeepSpeed (and with it transformers) at once, and
on a machine without an accelerator DeepSpeed prints its "Setting accelerator
to CPU" warning as it loads. The subpackages whose modules import the runner
(``engine``, ``inference``, ``export``, the mmengine checkpoint loader) import
this first, so that importing them loads no DeepSpeed and prints nothing:
mmengine's strategy module is imported with DeepSpeed deferred to its first
use (:mod:`mmseg_internvit.deferred_deepspeed`), which is what
:func:`~mmseg_internvit.register_all_modules` does too. Nothing is registered
and no setting changes here.
"""
from .deferred_deepspeed import defer_deepspeed_for_mmengine

defer_deepspeed_for_mmengine()
