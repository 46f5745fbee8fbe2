"""Check an exported graph against PyTorch with onnxruntime's CPU provider."""
import statistics
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch

TOLERANCES = {torch.float32: (1e-4, 1e-4), torch.float16: (1e-2, 1e-2)}  # (atol, rtol)


@dataclass
class CheckResult:
    """How an export compared with PyTorch on the sample inputs.

    Attributes:
        max_abs_diff: Largest ``|onnx - torch|`` over every output and sample
            (for label outputs: the largest gap between torch's logits of the
            two labels of a pixel whose labels differ).
        max_abs_ref: Largest ``|torch|`` value (the scale of the outputs).
        bound: ``atol + rtol * max_abs_ref``; the check passes at or below it.
        shapes: The input shapes that were run.
        label_mismatches: Pixels whose label differs (label outputs only).
    """
    max_abs_diff: float
    max_abs_ref: float
    bound: float
    shapes: List[Tuple[int, ...]]
    label_mismatches: int = 0

    @property
    def passed(self) -> bool:
        return self.max_abs_diff <= self.bound

    def __str__(self) -> str:
        shapes = ', '.join('x'.join(map(str, s)) for s in self.shapes)
        text = (f'max |onnxruntime - torch| = {self.max_abs_diff:.3g} on inputs {shapes} '
                f'(bound {self.bound:.3g}; largest |torch| value {self.max_abs_ref:.3g})')
        if self.label_mismatches:
            text += f'; {self.label_mismatches} pixels take another label'
        return text


def odd_size(n: int, grow: bool) -> int:
    """A size near ``n`` (a quarter larger or smaller) that is odd and no multiple of 14."""
    m = max(1, n + n // 4 if grow else n - n // 4) | 1
    return m + 2 if m % 14 == 0 else m


def sample_shapes(export_shape: Sequence[int], dynamic: bool) -> List[Tuple[int, int, int, int]]:
    """Inputs the check runs: 2 images at the export size, plus with ``dynamic`` one
    image a quarter shorter and wider, odd and not a multiple of 14."""
    h, w = export_shape
    shapes = [(2, 3, h, w)]
    if dynamic:
        shapes.append((1, 3, odd_size(h, grow=False), odd_size(w, grow=True)))
    return shapes


def compare_outputs(onnx_outputs: Sequence[np.ndarray], torch_outputs: Sequence[torch.Tensor],
                    torch_logits: torch.Tensor = None) -> Tuple[float, float, int]:
    """``(max_abs_diff, max_abs_ref, label_mismatches)`` of one sample.

    With ``torch_logits`` the outputs are labels: a pixel may take another
    label only where torch's logits of the two labels are that close (a
    near-tie); the largest such gap is the difference reported.
    """
    if torch_logits is None:
        diffs = [np.abs(o.astype(np.float64) - t.double().numpy()).max()
                 for o, t in zip(onnx_outputs, torch_outputs)]
        refs = [t.abs().max().item() for t in torch_outputs]
        return float(max(diffs)), float(max(refs)), 0
    onnx_labels = torch.from_numpy(onnx_outputs[0])
    differ = onnx_labels != torch_outputs[0]
    gap = 0.0
    if differ.any():
        logits = torch_logits.permute(0, 2, 3, 1)[differ]  # (pixels, classes)
        picked = logits.gather(1, onnx_labels[differ][:, None])[:, 0]
        gap = (logits.max(dim=1).values - picked).max().item()
    return gap, torch_logits.abs().max().item(), int(differ.sum())


def interleaved_medians(runs: Dict[str, Callable[[], Any]], repeats: int) -> Dict[str, float]:
    """Median wall time of each ``run()``, over ``repeats`` rounds after one warm-up
    round; each round calls every run once, so a change in machine load during
    the measurement affects all of them alike."""
    times = {name: [] for name in runs}
    for round_index in range(repeats + 1):
        for name, run in runs.items():
            start = time.perf_counter()
            run()
            if round_index:
                times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}
