"""Segmentors (need mmseg)."""
from .batched_slide import (BatchedSlideEncoderDecoder, results_at_model_resolution,
                            slide_logits, slide_windows)

__all__ = ['BatchedSlideEncoderDecoder', 'results_at_model_resolution', 'slide_logits',
           'slide_windows']
