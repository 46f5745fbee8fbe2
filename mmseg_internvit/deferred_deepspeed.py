"""DeepSpeed imported at its first use by mmengine, not when mmengine's runner loads.

mmengine 0.10 imports DeepSpeed at the top of ``mmengine._strategy.deepspeed``,
which every ``mmengine.runner`` import pulls in, but uses it only inside
``DeepSpeedStrategy``. DeepSpeed's import (it loads transformers and scipy)
made any tool start about 2.3 s later (9.9 s instead of 7.6 s on a 2-core CPU
machine, docs/architecture.md), so DDP, FSDP and single-process runs,
inference and the checkpoint tools paid it for nothing.

:func:`defer_deepspeed_for_mmengine` imports that mmengine module with a
stand-in for ``deepspeed`` bound in it. The stand-in is in ``sys.modules``
only while that one module is imported: any other ``import deepspeed`` (ours,
mmengine's ``init_dist``, a pickle naming a DeepSpeed class) gets the real
package as usual. The stand-in imports the real package on its first
attribute access (``deepspeed.__version__``, ``deepspeed.initialize``) and
hands the attribute on, so mmengine's strategy behaves as before.
"""
import importlib
import sys
import types
from importlib.util import find_spec
from typing import Any

_MMENGINE_MODULE = 'mmengine._strategy.deepspeed'


class DeferredModule(types.ModuleType):
    """A stand-in for a module that imports the real one on first attribute access.

    ``__file__`` and ``__path__`` are answered with AttributeError without an
    import: ``inspect`` probes ``__file__`` of every module it can see, and a
    stand-in must not pass for a package whose submodules could be imported
    without the package itself.

    ``__spec__`` is the real module's spec, found without importing it:
    ``importlib.util.find_spec(name)`` returns the ``__spec__`` of a module in
    ``sys.modules`` and raises ValueError where it is None (transformers asks
    that of ``deepspeed`` while mmengine imports it, where accelerate is
    installed).

    Args:
        name: The real module's import name (top-level: finding a dotted
            name's spec would import its parent).
    """

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.__spec__ = find_spec(name)

    def __getattr__(self, attr: str) -> Any:
        if attr in ('__file__', '__path__'):
            raise AttributeError(f'{self.__name__} is not imported yet')
        return getattr(self.load(), attr)

    def load(self) -> types.ModuleType:
        """Import the real module (once; later calls return it from ``sys.modules``)."""
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        return importlib.import_module(name)


def defer_deepspeed_for_mmengine() -> None:
    """Import ``mmengine._strategy.deepspeed`` with DeepSpeed deferred (see the module).

    Does nothing where that module is imported already, or where DeepSpeed is
    not installed (mmengine then catches the ImportError as it always has).
    """
    if _MMENGINE_MODULE in sys.modules or 'deepspeed' in sys.modules \
            or find_spec('deepspeed') is None:
        return
    stand_in = DeferredModule('deepspeed')
    sys.modules['deepspeed'] = stand_in
    try:
        importlib.import_module(_MMENGINE_MODULE)
    finally:
        if sys.modules.get('deepspeed') is stand_in:
            del sys.modules['deepspeed']
