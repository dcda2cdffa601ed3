"""The few kernels where one backend needs its own path, chosen by `keras.backend.backend()`.

Everything else in voxelmetrics is written once in `keras.ops`.
"""

from voxelmetrics.backends._counting import count_true
from voxelmetrics.backends._dispatch import (
    Streaming,
    bincount,
    compile_kernel,
    is_concrete,
    is_meta,
    set_row,
    to_host,
    value_range,
)
from voxelmetrics.backends._sorting import (
    run_starts,
    searchsorted,
    sort_with_labels,
    sorted_histogram,
)
from voxelmetrics.backends.distributed import all_reduce_metrics, process_split, sharded_totals

__all__ = [
    "Streaming",
    "all_reduce_metrics",
    "bincount",
    "compile_kernel",
    "count_true",
    "is_concrete",
    "is_meta",
    "process_split",
    "run_starts",
    "searchsorted",
    "set_row",
    "sharded_totals",
    "sort_with_labels",
    "sorted_histogram",
    "to_host",
    "value_range",
]
