"""The defaults the CLI shows and the library uses, in one module that imports only `typing`.

`voxelmetrics --help` prints these without importing Keras; the ops, metrics, calibration
layers, the engine and `voxelmetrics bench` read the same names, so a default changes here
or nowhere (`tests/test_defaults.py` checks every signature against this module).

| name                  | value                  | read by                                   |
| --------------------- | ---------------------- | ----------------------------------------- |
| `NUM_BINS`            | 1024 histogram bins    | ops, metrics, calibration, engine, CLI    |
| `THRESHOLD`           | 0.5 (`score >= 0.5`)   | ops, engine, CLI, bench                   |
| `CHUNK_MB`            | 256 MiB per chunk      | engine, CLI                               |
| `BOOTSTRAP`           | 1000 resamples (CI)    | CLI, statistics, report                   |
| `CRITERION`           | "f1"                   | CLI, report, `Criterion`                  |
| `CRITERIA`            | the criterion names    | `ops.criterion`, CLI help                 |
| `CriterionName`       | the same, a `Literal`  | `Criterion.name` (type checkers)          |
| `PRED_KINDS`          | auto, scores, labels, masks | engine, CLI (`--pred-kind`)     |
| `SURFACE_CONVENTIONS` | monai, deepmind, medpy | `ops._options`, CLI (`--surface-convention`) |
| `SURFACE_CONVENTION`  | "monai"                | surface ops and metrics, engine, lesions  |
| `ZERO_DIVISION`       | "nan" (0 / 0)          | score ops, metrics, report, CLI           |
| `CONNECTIVITIES`      | 6, 18, 26 neighbours   | lesions, CLI (`--connectivity`)           |
| `CONNECTIVITY`        | 26                     | lesions, CLI                              |
| `MATCH_THRESHOLD`     | 0.5 (IoU >= 0.5)       | lesions, CLI (`--match-threshold`)        |

1024 is a power of two, so `bin_index` needs no edge correction.

Example:
    >>> from voxelmetrics import defaults
    >>> defaults.NUM_BINS, defaults.PRED_KINDS[0]
    (1024, 'auto')
"""

from typing import Literal, get_args

NUM_BINS = 1024
THRESHOLD = 0.5
CHUNK_MB = 256.0
BOOTSTRAP = 1000
# The criterion names: a `Literal` written out, the one type checkers read (`Criterion.name`
# has it), and the same names as a tuple for the CLI and `Criterion`'s check.
CriterionName = Literal[
    "f1",
    "fbeta",
    "dice",
    "iou",
    "youden",
    "recall_at_precision",
    "precision_at_recall",
    "recall_at_specificity",
    "specificity_at_recall",
    "cost",
]
CRITERIA = get_args(CriterionName)
CRITERION: CriterionName = "f1"
# How each criterion is written on the command line (`Criterion.parse`).
CRITERION_SPELLINGS = (
    "f1, dice, iou, youden, fbeta:BETA, recall_at_precision:MIN_PRECISION, "
    "precision_at_recall:MIN_RECALL, recall_at_specificity:MIN_SPECIFICITY, "
    "specificity_at_recall:MIN_RECALL, cost:FP:FN"
)
PRED_KINDS = ("auto", "scores", "labels", "masks")
PRED_KIND = PRED_KINDS[0]
# The boundary conventions (`ops/surface_rules.py` defines each); the first is the default.
SURFACE_CONVENTIONS = ("monai", "deepmind", "medpy")
SURFACE_CONVENTION = SURFACE_CONVENTIONS[0]
# What an undefined ratio (0 / 0: a class absent from truth and prediction) becomes.
ZERO_DIVISION = "nan"
# Lesions: the neighbours that join voxels into one lesion, and panoptica's matching IoU.
CONNECTIVITIES = (6, 18, 26)
CONNECTIVITY = 26
MATCH_THRESHOLD = 0.5
