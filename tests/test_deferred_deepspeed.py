"""DeepSpeed is imported when mmengine first uses it, not when its runner loads."""
import importlib.metadata
import importlib.util
import inspect
import os
import subprocess
import sys
import textwrap

import pytest

from mmseg_internvit.deferred_deepspeed import DeferredModule


def test_stand_in_imports_the_real_module_on_first_use(tmp_path, monkeypatch):
    package = tmp_path / 'slow_to_import'
    package.mkdir()
    (package / '__init__.py').write_text('import os\nos.environ["SLOW_TO_IMPORT_RAN"] = "1"\n'
                                         'answer = 42\n')
    (package / 'part.py').write_text('value = 7\n')
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv('SLOW_TO_IMPORT_RAN', raising=False)
    stand_in = DeferredModule('slow_to_import')
    monkeypatch.setitem(sys.modules, 'slow_to_import', stand_in)
    # inspect probes __file__ of every module in sys.modules: no import for that,
    # and no __path__ either, so no submodule is imported without its package.
    assert not hasattr(stand_in, '__file__') and not hasattr(stand_in, '__path__')
    inspect.getmodule(test_stand_in_imports_the_real_module_on_first_use)
    # transformers' is_deepspeed_available() asks find_spec of a module in
    # sys.modules for its __spec__: the real spec, without an import.
    spec = importlib.util.find_spec('slow_to_import')
    assert spec.name == 'slow_to_import' and spec.origin == str(package / '__init__.py')
    assert 'SLOW_TO_IMPORT_RAN' not in os.environ
    assert stand_in.answer == 42
    assert os.environ['SLOW_TO_IMPORT_RAN'] == '1'
    real = sys.modules['slow_to_import']
    assert real is not stand_in and type(real) is type(os)
    from slow_to_import.part import value
    assert value == 7 and real.part.value == 7
    with pytest.raises(AttributeError, match='missing'):
        stand_in.missing


@pytest.mark.skipif(importlib.util.find_spec('deepspeed') is None, reason='DeepSpeed not installed')
def test_tools_start_without_deepspeed_and_mmengine_loads_it_when_used():
    code = textwrap.dedent('''
        import sys
        from mmseg_internvit import register_all_modules
        register_all_modules()
        import mmengine.runner, mmseg.apis, mmdet.apis
        import mmengine._strategy.deepspeed as strategy_module
        print('deepspeed' in sys.modules, type(strategy_module.deepspeed).__name__)
        # What transformers asks while mmengine imports, where accelerate is installed.
        import importlib.util
        sys.modules['deepspeed'] = strategy_module.deepspeed
        print(importlib.util.find_spec('deepspeed').name, 'deepspeed.ops' in sys.modules)
        del sys.modules['deepspeed']
        # What DeepSpeedStrategy checks and calls, through the stand-in.
        print(strategy_module.deepspeed is not None, strategy_module.deepspeed.__version__)
        print(type(sys.modules['deepspeed']).__name__,
              callable(strategy_module.deepspeed.initialize))
        from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
        print(sys.modules['deepspeed'].utils.zero_to_fp32.get_fp32_state_dict_from_zero_checkpoint
              is get_fp32_state_dict_from_zero_checkpoint)
    ''')
    env = {k: v for k, v in os.environ.items() if k != 'DS_ACCELERATOR'}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.splitlines() == [
        'False DeferredModule',
        'deepspeed False',
        f"True {importlib.metadata.version('deepspeed')}",
        'module True',
        'True',
    ]
    # register_all_modules named the CPU accelerator before DeepSpeed's late import.
    import torch
    if not torch.cuda.is_available():
        assert 'Setting accelerator' not in out.stderr


@pytest.mark.skipif(importlib.util.find_spec('deepspeed') is None, reason='DeepSpeed not installed')
def test_importing_the_runner_side_of_the_package_loads_no_deepspeed():
    """``from mmseg_internvit.inference import Segmenter`` and the other modules that
    import mmengine's runner print nothing and load no DeepSpeed before it is used."""
    code = textwrap.dedent('''
        import os, sys
        import mmseg_internvit.inference, mmseg_internvit.export, mmseg_internvit.engine
        import mmseg_internvit.checkpoint.mmengine_loader, mmseg_internvit.apis.train
        import mmengine._strategy.deepspeed as strategy_module
        print('deepspeed' in sys.modules, os.environ.get('DS_ACCELERATOR'),
              type(strategy_module.deepspeed).__name__)
        from mmseg.registry import MODELS
        print(MODELS.get('InternViT'))  # still nothing registered
    ''')
    env = {k: v for k, v in os.environ.items() if k != 'DS_ACCELERATOR'}
    out = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True,
                         check=True, env=env)
    assert out.stdout.splitlines() == ['False None DeferredModule', 'None']
    assert 'Setting accelerator' not in out.stderr
