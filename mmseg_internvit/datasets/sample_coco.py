"""A tiny deterministic COCO-format instance dataset for detection smoke tests."""
import json
import os
from typing import Dict, Tuple

import cv2
import numpy as np

CLASSES = ('rectangle', 'ellipse')


def _instance(rng: np.random.Generator, width: int, height: int, label: int) -> np.ndarray:
    """Polygon ``(K, 2)`` of a random rectangle (label 0) or ellipse (label 1)."""
    w, h = rng.integers(width // 6, width // 2), rng.integers(height // 6, height // 2)
    x0, y0 = rng.integers(0, width - w), rng.integers(0, height - h)
    if label == 0:
        return np.array([[x0, y0], [x0 + w, y0], [x0 + w, y0 + h], [x0, y0 + h]], np.int32)
    center = (int(x0 + w // 2), int(y0 + h // 2))
    return cv2.ellipse2Poly(center, (int(w // 2), int(h // 2)), 0, 0, 360, 15)


def build_sample_coco(root: str, num_images: int = 4, size: Tuple[int, int] = (160, 120),
                      seed: int = 0) -> Dict[str, str]:
    """Write images and ``instances_{train,val}2017.json`` (same images) under ``root``.

    Each image has 2-3 filled shapes on a noisy background; the classes are
    :data:`CLASSES` (category ids 1 and 2). Same seed, same files.

    Args:
        root: Output folder (``train2017/``, ``val2017/``, ``annotations/``).
        num_images: Images per split.
        size: ``(width, height)`` of every image.
        seed: RNG seed.

    Returns:
        ``dict(data_root=root, classes=CLASSES)``-style paths: ``data_root``,
        ``train_ann`` and ``val_ann`` (relative to ``data_root``).
    """
    if num_images < 1:
        raise ValueError(f'num_images must be at least 1, got {num_images}')
    width, height = size
    rng = np.random.default_rng(seed)
    images, annotations = [], []
    for split in ('train2017', 'val2017'):
        os.makedirs(os.path.join(root, split), exist_ok=True)
    for index in range(num_images):
        image = rng.integers(0, 60, (height, width, 3), dtype=np.uint8)
        name = f'{index:06d}.jpg'
        for k in range(int(rng.integers(2, 4))):
            label = int(k % 2)
            poly = _instance(rng, width, height, label)
            color = [int(c) for c in rng.integers(120, 256, 3)]
            cv2.fillPoly(image, [poly], color)
            mask = np.zeros((height, width), np.uint8)
            cv2.fillPoly(mask, [poly], 1)
            ys, xs = np.nonzero(mask)
            x, y = int(xs.min()), int(ys.min())
            annotations.append(dict(
                id=len(annotations) + 1, image_id=index + 1, category_id=label + 1, iscrowd=0,
                segmentation=[poly.flatten().astype(float).tolist()], area=float(mask.sum()),
                bbox=[x, y, int(xs.max()) - x + 1, int(ys.max()) - y + 1]))
        for split in ('train2017', 'val2017'):
            cv2.imwrite(os.path.join(root, split, name), image)
        images.append(dict(id=index + 1, file_name=name, width=width, height=height))
    categories = [dict(id=i + 1, name=n, supercategory='shape') for i, n in enumerate(CLASSES)]
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    paths = dict(data_root=root)
    for split in ('train2017', 'val2017'):
        rel = f'annotations/instances_{split}.json'
        with open(os.path.join(root, rel), 'w') as f:
            json.dump(dict(images=images, annotations=annotations, categories=categories), f)
        paths['train_ann' if split == 'train2017' else 'val_ann'] = rel
    return paths
