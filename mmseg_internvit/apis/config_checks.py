"""Checks of a loaded config that mmengine and mmseg do not make: settings that
would be ignored, would quietly change what is measured, or that mmengine fails
on without naming them (a training length of 0, a ``type`` no registry holds)."""
import difflib
import inspect
from typing import List, Optional

from mmengine.config import Config


def check_runner_key_spelling(cfg: Config, config_path: str) -> None:
    """Stop on a top-level key that is a near miss of a runner setting.

    mmengine's runners read their settings by name and ignore every other
    top-level key (configs keep their own variables there: ``crop_size``,
    ``train_pipeline``), so ``trian_cfg = dict(max_iters=4)`` trained the
    full schedule without a word. Keys within a small edit of a setting's
    name are taken for typos; the shipped configs' own variables are not.
    """
    from mmengine.runner import FlexibleRunner, Runner
    settings = sorted({name for runner in (Runner, FlexibleRunner)
                       for name in inspect.signature(runner.__init__).parameters} - {'self'})
    for key in cfg.keys():
        if key in settings:
            continue
        near = difflib.get_close_matches(key, settings, n=1, cutoff=0.8)
        if near:
            raise ValueError(f'{config_path}: the top-level key {key!r} is no runner setting '
                             f'and would be ignored; did you mean {near[0]!r}? Rename it (or '
                             'give your own variable a name further from the runner\'s).')


def registered_names(registry) -> List[str]:
    """Every name in ``registry``'s tree: its root's and all scopes' below it (a
    config may name a class of another package's scope as ``mmdet.X``)."""
    root = registry
    while root.parent is not None:
        root = root.parent
    names, todo = set(), [root]
    while todo:
        current = todo.pop()
        names.update(current.module_dict)
        todo.extend(current.children.values())
    return sorted(names)


def unknown_type_message(name: str, registry) -> str:
    """What to say about a config ``type`` that ``registry`` cannot find."""
    bare = name.rsplit('.', 1)[-1]
    near = difflib.get_close_matches(bare, registered_names(registry), n=1, cutoff=0.8)
    hint = f"; did you mean {near[0]!r}?" if near else ''
    return (f'type {name!r} is not in the {registry.name} registry: no imported package '
            'registers a class of that name; check its spelling in the config or in '
            f'--cfg-options (a class of your own needs custom_imports){hint}')


def check_optimizer_type(cfg: Config) -> None:
    """Stop on an ``optim_wrapper.optimizer.type`` no registry holds.

    mmengine's optimizer wrapper constructor looks the type up without checking
    the result and fails inside ``inspect.signature(None)`` ("None is not a
    callable object"), naming neither the type nor the key. Call this after the
    runner is built: DeepSpeed's optimizers are registered with its strategy.
    """
    from mmengine.registry import OPTIMIZERS
    name = ((cfg.get('optim_wrapper') or {}).get('optimizer') or {}).get('type')
    if isinstance(name, str) and OPTIMIZERS.get(name) is None:
        raise ValueError(f'optim_wrapper.optimizer: {unknown_type_message(name, OPTIMIZERS)}')


# What mmseg 1.2's IoUMetric computes; it checks the names only in
# compute_metrics, after the whole validation or test set has run.
IOU_METRICS = ('mIoU', 'mDice', 'mFscore')


def check_iou_metrics(cfg: Config, config_path: str) -> None:
    """Stop on an ``IoUMetric`` of ``val_evaluator`` / ``test_evaluator`` whose
    ``iou_metrics`` names something it does not compute, before any image runs."""
    for key in ('val_evaluator', 'test_evaluator'):
        evaluators = cfg.get(key)
        for metric in evaluators if isinstance(evaluators, (list, tuple)) else [evaluators]:
            if not isinstance(metric, dict) or \
                    str(metric.get('type', '')).rsplit('.', 1)[-1] != 'IoUMetric':
                continue
            names = metric.get('iou_metrics', ['mIoU'])
            names = [names] if isinstance(names, str) else list(names)
            unknown = [name for name in names if name not in IOU_METRICS]
            if unknown:
                raise ValueError(f"{config_path}: {key}.iou_metrics names {unknown}, which "
                                 f"IoUMetric does not compute (it computes {', '.join(IOU_METRICS)}"
                                 '; mmseg would say so only after the whole evaluation ran): '
                                 'fix the name in the config or in --cfg-options')


def check_training_schedule(cfg: Config, config_path: str) -> None:
    """Stop on a training length or validation interval below 1.

    mmengine's training loops take them as given: ``max_iters=0`` (or a
    negative count) ends training before its first iteration and the run
    exits 0 with nothing trained or saved; ``val_interval=0`` trains one
    iteration and then divides by zero when it asks whether to validate.
    Values that are not numbers are left to the loop (it names them).
    """
    train_cfg = cfg.get('train_cfg') or {}
    for key, what in (('max_iters', 'would train no iteration'),
                      ('max_epochs', 'would train no epoch'),
                      ('val_interval', 'is what the loop divides by to decide when to '
                                       'validate')):
        value = train_cfg.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value < 1:
            hint = ('; for no validation during training give one above the training '
                    'length' if key == 'val_interval' else '')
            raise ValueError(f'{config_path}: train_cfg.{key}={value} {what}; give a whole '
                             f'number >= 1 (in the config or --cfg-options){hint}')


def head_class_count_mismatch(cfg: Config) -> Optional[str]:
    """Say so when the decode head predicts another number of classes than a
    dataset of the config has; None when they agree or either is unknown.

    mmseg checks neither (mmdet's NumClassCheckHook does for detectors): with
    more head classes, predictions of the extra ones are never scored
    (``IoUMetric`` counts the dataset's classes); with fewer, the dataset's
    last classes can never be predicted. The dataset's classes are its
    config's ``metainfo.classes`` or its class's ``METAINFO``.
    """
    head = (cfg.get('model') or {}).get('decode_head')
    num_classes = head.get('num_classes') if isinstance(head, dict) else None
    if not isinstance(num_classes, int):
        return None
    for split in ('train', 'val', 'test'):
        dataset = (cfg.get(f'{split}_dataloader') or {}).get('dataset')
        classes = _dataset_classes(dataset)
        if classes is not None and len(classes) != num_classes:
            return (f'model.decode_head.num_classes is {num_classes} but {split}_dataloader\'s '
                    f'{dataset.get("type")} has {len(classes)} classes: mIoU is computed over '
                    f'the dataset\'s {len(classes)}; set num_classes (and the auxiliary '
                    'head\'s) to it, or give the dataset metainfo=dict(classes=...)')
    return None


def _dataset_classes(dataset) -> Optional[tuple]:
    if not isinstance(dataset, dict):
        return None
    classes = (dataset.get('metainfo') or {}).get('classes')
    if classes is None:
        from mmseg.registry import DATASETS
        try:
            dataset_class = DATASETS.get(dataset.get('type'))
        except (KeyError, TypeError):  # an unregistered or unnamed type: nothing to compare
            return None
        classes = getattr(dataset_class, 'METAINFO', {}).get('classes')
    return tuple(classes) if isinstance(classes, (list, tuple)) else None
