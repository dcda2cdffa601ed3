"""`voxelmetrics bench`: time the fused report against Keras, torchmetrics, scikit-learn, a floor.

Every backend runs in its own worker process (`KERAS_BACKEND` is read once, when Keras is
imported); inside one worker all paths see the same volume, so the ratios are like for like.
The peers are the `bench` extra (`pip install 'voxelmetrics[bench]'`).

One module per concern: `command` (options, one worker per backend), `data` (the volumes),
`paths` (every timed path), `timing` (the worker: best times, scaling, peak RSS), `table`
(ratios and targets as text or Markdown), `engine` (`--engine`: the evaluation job),
`machine`, `extra` (the peers' packages). Keras is imported only inside the functions that
time, so each worker process has chosen its backend first.
"""

from voxelmetrics.bench.command import BACKENDS, configure_parser, main, run
from voxelmetrics.bench.data import SIZES, scaling_shapes, synthetic_volume
from voxelmetrics.bench.engine import ENGINE_TARGETS, engine_ratios, format_engine
from voxelmetrics.bench.extra import EXTRA, MissingExtra
from voxelmetrics.bench.machine import machine
from voxelmetrics.bench.paths import (
    NUM_BINS,
    PATH_NOTES,
    THRESHOLD,
    all_paths,
    our_paths,
    our_report,
    path_builders,
)
from voxelmetrics.bench.table import COMPARISONS, compare, format_markdown, format_table
from voxelmetrics.bench.timing import best_time, memory_worker, scaling_exponent, worker

__all__ = [
    "BACKENDS",
    "COMPARISONS",
    "ENGINE_TARGETS",
    "EXTRA",
    "NUM_BINS",
    "PATH_NOTES",
    "SIZES",
    "THRESHOLD",
    "MissingExtra",
    "all_paths",
    "best_time",
    "compare",
    "configure_parser",
    "engine_ratios",
    "format_engine",
    "format_markdown",
    "format_table",
    "machine",
    "main",
    "memory_worker",
    "our_paths",
    "our_report",
    "path_builders",
    "run",
    "scaling_exponent",
    "scaling_shapes",
    "synthetic_volume",
    "worker",
]
