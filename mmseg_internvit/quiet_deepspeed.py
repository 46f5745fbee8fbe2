"""Name DeepSpeed's accelerator up front on machines without one.

mmengine imports DeepSpeed (when installed) to register its optimizers, and
DeepSpeed then prints "Setting accelerator to CPU ..." as a warning on every
machine without a GPU. Stating the accelerator it would pick anyway, before
that import, keeps ``import mmseg_internvit`` silent; a user's own
``DS_ACCELERATOR`` always wins.
"""
import os

import torch


def name_cpu_accelerator_for_deepspeed() -> None:
    if 'DS_ACCELERATOR' in os.environ or torch.cuda.is_available():
        return
    xpu = getattr(torch, 'xpu', None)
    if torch.backends.mps.is_available() or (xpu is not None and xpu.is_available()):
        return
    os.environ['DS_ACCELERATOR'] = 'cpu'
