"""mmengine's DeepSpeedStrategy registers DeepSpeed's optimizers once per process.

Two real strategies in one process are built by tests/test_zero_alignment.py's
one-process run (both smoke ZeRO configs); this file checks the replacement itself.
"""
from mmseg_internvit import register_all_modules
from mmseg_internvit.deepspeed_optimizers_once import register_deepspeed_optimizers_once


def test_mmengine_registers_deepspeed_optimizers_at_the_first_call_only(monkeypatch):
    register_all_modules()  # imports mmengine's strategy module with DeepSpeed deferred
    import mmengine._strategy.deepspeed as strategy_module
    calls = []

    def register():
        calls.append('registered')
        return ['DeepSpeedCPUAdam', 'FusedAdam']

    monkeypatch.setattr(strategy_module, 'register_deepspeed_optimizers', register)
    register_deepspeed_optimizers_once()
    register_deepspeed_optimizers_once()  # a second call does not wrap the wrapper
    answers = [strategy_module.register_deepspeed_optimizers() for _ in range(3)]
    assert calls == ['registered']
    assert answers == [['DeepSpeedCPUAdam', 'FusedAdam']] * 3
    answers[0].append('mine')  # each caller gets its own list, as from mmengine's function
    assert strategy_module.register_deepspeed_optimizers() == ['DeepSpeedCPUAdam', 'FusedAdam']
    assert strategy_module.register_deepspeed_optimizers.__wrapped__ is register
