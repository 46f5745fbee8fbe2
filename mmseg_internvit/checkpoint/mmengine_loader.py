"""Let mmengine load ``.safetensors`` model files wherever it takes a checkpoint.

mmengine resolves local checkpoint paths with one loader (``torch.load``).
Registering a loader for the local scheme that reads ``*.safetensors`` with
safetensors (and hands everything else to mmengine's own loader) makes
``load_from``, ``tools/test.py``, ``init_model`` and ``MMSegInferencer`` accept
the consolidated files that ``tools/consolidate_checkpoint.py`` writes.
"""
from mmengine.runner.checkpoint import CheckpointLoader, load_from_local


def _load_local(filename: str, map_location=None):
    if str(filename).endswith('.safetensors'):
        from safetensors.torch import load_file
        device = map_location if isinstance(map_location, str) else 'cpu'
        return {'state_dict': load_file(filename, device=device)}
    return load_from_local(filename, map_location)


def register_safetensors_loader() -> None:
    CheckpointLoader.register_scheme(prefixes='', loader=_load_local, force=True)
