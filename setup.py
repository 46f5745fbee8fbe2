"""Install mmseg_internvit: InternViT backbones for mmsegmentation 1.x and mmdet 3.x."""
from pathlib import Path

from setuptools import find_packages, setup


def requirements(name: str) -> list:
    """The requirement lines of a requirements file beside this one."""
    lines = (Path(__file__).parent / name).read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith('#')]


setup(
    name='mmseg_internvit',
    version='0.1.0',
    description='InternViT-6B / 300M backbones for mmsegmentation 1.x and '
    'mmdetection 3.x, with checkpoint loaders and ZeRO/FSDP full tuning.',
    packages=find_packages(include=['mmseg_internvit', 'mmseg_internvit.*']),
    python_requires='>=3.10',
    # The full pinned stack lives in requirements.txt (mmcv must be built
    # with ops, which pip cannot express here); these are the import needs.
    install_requires=['torch', 'timm', 'safetensors', 'mmengine'],
    extras_require={'deepspeed': requirements('requirements-deepspeed.txt')},
)
