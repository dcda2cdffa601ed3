"""The few kernels where one backend needs its own path, chosen by `keras.backend.backend()`.

Everything else in voxelmetrics is written once in `keras.ops`.
"""

from voxelmetrics.backends._counting import count_true
from voxelmetrics.backends._dispatch import bincount, compile_kernel, is_concrete
from voxelmetrics.backends._sorting import searchsorted, sort_with_labels, sorted_histogram

__all__ = [
    "bincount",
    "compile_kernel",
    "count_true",
    "is_concrete",
    "searchsorted",
    "sort_with_labels",
    "sorted_histogram",
]
