"""COCO-format instance datasets whose classes are the annotation file's own categories."""
import json
from collections import Counter
from typing import List, Optional, Tuple

from mmdet.datasets import CocoDataset
from mmengine.fileio import get_local_path

from mmseg_internvit.registry import DATASETS

MAX_REPORTED = 5  # bad annotations named in one error message


def coco_categories(content: dict, ann_file: str) -> List[Tuple[int, str]]:
    """The ``(id, name)`` categories of a COCO annotation dict, after checking it.

    Every annotation's ``category_id`` must be a listed category: mmdet's
    :class:`CocoDataset` silently drops annotations of unknown categories.

    Args:
        content: The parsed annotation file.
        ann_file: Its path, for error messages.

    Raises:
        ValueError: Naming the file and the offending categories or annotations.
    """
    categories = content.get('categories')
    if not categories:
        raise ValueError(f"{ann_file}: no 'categories' list; a COCO file names its classes as "
                         "\"categories\": [{\"id\": 1, \"name\": \"person\"}, ...]")
    pairs = [(cat.get('id'), cat.get('name')) for cat in categories]
    for kind, values in (('id', [i for i, _ in pairs]), ('name', [n for _, n in pairs])):
        repeated = sorted(str(v) for v, count in Counter(values).items() if count > 1)
        if repeated:
            raise ValueError(f'{ann_file}: category {kind}s {repeated} appear more than once in '
                             "'categories'; each category needs its own id and name")
    known = {i for i, _ in pairs}
    bad = [ann for ann in content.get('annotations', []) if ann.get('category_id') not in known]
    if bad:
        shown = '; '.join(f"annotation id {ann.get('id')} (image_id {ann.get('image_id')}) has "
                          f"category_id {ann.get('category_id')!r}" for ann in bad[:MAX_REPORTED])
        more = f' (and {len(bad) - MAX_REPORTED} more)' if len(bad) > MAX_REPORTED else ''
        raise ValueError(f"{ann_file}: {len(bad)} annotation(s) use a category id that is not in "
                         f"'categories' (ids {sorted(known)}): {shown}{more}. Fix the "
                         "category_id or add the category.")
    return pairs


@DATASETS.register_module()
class CocoFormatDataset(CocoDataset):
    """mmdet's :class:`CocoDataset` for any COCO-format file: classes from its categories.

    ``metainfo['classes']`` defaults to the names of the file's ``categories``
    (in file order, which is the label order mmdet's loader and ``CocoMetric``
    use), so a custom dataset needs no class list in the config. Names given in
    ``metainfo`` select a subset, as in :class:`CocoDataset`, and must exist in
    the file. Before loading, every annotation's ``category_id`` is checked
    against the categories (:func:`coco_categories`). Palette: mmdet's random
    palette, sized to the classes.

    Args:
        *args: :class:`CocoDataset` arguments (``ann_file``, ``data_root``, ...).
        metainfo: Optional ``dict(classes=(...))`` subset.
        **kwargs: :class:`CocoDataset` keyword arguments.
    """

    METAINFO = dict(classes=(), palette=None)

    def __init__(self, *args, metainfo: Optional[dict] = None, **kwargs) -> None:
        self._requested_classes = tuple((metainfo or {}).get('classes') or ())
        super().__init__(*args, metainfo=metainfo, **kwargs)

    def load_data_list(self) -> List[dict]:
        """Read the categories, check the file, then load as :class:`CocoDataset`."""
        with get_local_path(self.ann_file, backend_args=self.backend_args) as local_path:
            with open(local_path) as f:
                try:
                    content = json.load(f)
                except (json.JSONDecodeError, UnicodeDecodeError) as error:
                    # json's message names neither the file nor what it is.
                    raise ValueError(f'{self.ann_file} is not a COCO annotation file (JSON): '
                                     f'{error}; give the instances_*.json of the dataset as '
                                     'ann_file') from error
        names = [name for _, name in coco_categories(content, self.ann_file)]
        missing = [c for c in self._requested_classes if c not in names]
        if missing:
            raise ValueError(f'{self.ann_file}: metainfo classes {missing} are not categories '
                             f'of the file (its categories: {names})')
        self._metainfo['classes'] = self._requested_classes or tuple(names)
        return super().load_data_list()
