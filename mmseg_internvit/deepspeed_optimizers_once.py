"""mmengine's DeepSpeed strategy, buildable more than once in a process.

mmengine 0.10.7's ``DeepSpeedStrategy.__init__`` calls
``register_deepspeed_optimizers()``, which registers DeepSpeed's optimizers
(``DeepSpeedCPUAdam``, ``FusedAdam``, ...) in mmengine's ``OPTIMIZERS``
without ``force``. The second strategy built in one process (a notebook that
builds two runners, a sweep that trains several configs in one process)
stopped with ``KeyError: 'DeepSpeedCPUAdam is already registered in
optimizer'``.

:func:`register_deepspeed_optimizers_once` makes that function register at
its first call and answer later calls with the first call's names. Nothing
else of the strategy changes.
"""
import functools
import importlib
from typing import List

_MMENGINE_MODULE = 'mmengine._strategy.deepspeed'


def register_deepspeed_optimizers_once() -> None:
    """Let mmengine's ``register_deepspeed_optimizers`` run once per process (idempotent).

    ``DeepSpeedStrategy.__init__`` looks the function up in its module's
    globals at each call, so replacing it there is enough. Where DeepSpeed is
    not installed the function registers nothing, as before.
    """
    module = importlib.import_module(_MMENGINE_MODULE)
    register = module.register_deepspeed_optimizers
    if getattr(register, 'registers_once', False):
        return
    first_call = functools.cache(register)

    @functools.wraps(register)
    def register_once() -> List[str]:
        return list(first_call())

    register_once.registers_once = True
    module.register_deepspeed_optimizers = register_once
