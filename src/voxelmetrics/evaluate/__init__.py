"""Offline evaluation of large 3D volumes: readers, the streaming engine, reports, plots, demo.

`evaluate(y_true=..., y_pred=..., options=Options(...))` streams files (or arrays) chunk by
chunk into exact per-case counts and histograms; `summarize` turns them into the report that the
`voxelmetrics evaluate` command prints and writes.
"""

from voxelmetrics.evaluate.engine import evaluate
from voxelmetrics.evaluate.formats import to_csv, to_json
from voxelmetrics.evaluate.phantom import make_case, write_phantom
from voxelmetrics.evaluate.readers import InputError, Volume, open_volume, pair_cases
from voxelmetrics.evaluate.records import CaseTotals, Evaluation, Options
from voxelmetrics.evaluate.report import parse_criterion, summarize

__all__ = [
    "CaseTotals",
    "Evaluation",
    "InputError",
    "Options",
    "Volume",
    "evaluate",
    "make_case",
    "open_volume",
    "pair_cases",
    "parse_criterion",
    "summarize",
    "to_csv",
    "to_json",
    "write_phantom",
]
