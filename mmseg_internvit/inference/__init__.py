"""Inference on image files: ``tools/infer.py`` and the :class:`Segmenter` API."""
from mmseg_internvit import runner_import  # noqa: F401 (first: see that module)
from .image_io import ImageReadError, read_image
from .inputs import IMAGE_EXTENSIONS, InputImage, expand_inputs
from .runner import Summary, run_inference
from .segmenter import Segmenter, prepare_config
from .writers import OutputDirError, prepare_out_dir

__all__ = [
    'ImageReadError', 'read_image', 'IMAGE_EXTENSIONS', 'InputImage', 'expand_inputs',
    'Summary', 'run_inference', 'Segmenter', 'prepare_config', 'OutputDirError',
    'prepare_out_dir'
]
