"""The engine's records: what it is asked (`Options`), what it returns (`CaseTotals`,
`Evaluation`) and how it cuts a case (`ChunkPlan`); plain data, no Keras.
"""

import dataclasses
import math
from collections.abc import Callable

import numpy as np

import voxelmetrics.defaults as defaults
from voxelmetrics.evaluate.lesions import CaseLesions, LesionRequest
from voxelmetrics.evaluate.regions import Regions
from voxelmetrics.evaluate.surface import SurfaceRequest

DEFAULT_CHUNK_MB = defaults.CHUNK_MB
HARD_KINDS = ("labels", "masks")
NO_CURVES = "hard predictions rank nothing: no curves, AP, AUC or optimal thresholds"

Progress = Callable[[str, int, int], None]


@dataclasses.dataclass(frozen=True)
class Options:
    """How to read and score a dataset (everything the engine needs, nothing the report does).

    Attributes:
        threshold: the working threshold, scalar or one per class (score >= threshold).
        num_bins: histogram bins on [0, 1] for curves, AP, AUC and optimal thresholds.
        from_logits: scores are logits (sigmoid for multi-hot truth, softmax for sparse).
        axis: the class axis of the prediction volumes (1 or 0 for channels-first).
        num_classes: expected number of classes (checked), or None to take it from the data.
        ignore_index: sparse label id whose voxels are skipped.
        chunk_mb: memory budget of one chunk, in MiB (buffers and kernel temporaries).
        pred_key, true_key: the array to read from `.npz` archives holding several.
        devices: under JAX, spread the cases over this many local devices (0: all of
            them), one reader thread per device; each case stays on one device and the
            totals are summed on the host. Memory grows to one chunk budget per device.
        num_classes_from: what to call `num_classes` in messages (the CLI names the option
            it came from, `--num-classes 3` or `--class-names (3 names)`).
        pred_kind: what the predictions are: `scores` (probabilities or logits, with a
            class axis), `labels` (an integer label map of the truth's shape: exclusive
            classes), `masks` (0/1 or bool multi-hot masks with a class axis), or `auto`:
            bool means masks, another integer dtype a label map, floats scores (a float
            array of only 0 and 1 stays scores unless `masks` is said; uint8 multi-hot
            masks of the truth's shape need `masks`, as a label map has that shape too).
        surface: the boundary measures to add per case and class (`--surface`), or None.
        spacing: the voxel size per spatial axis for them (`--spacing`); None reads it from
            NIfTI headers, else 1.0.
    """

    threshold: float | tuple[float, ...] = defaults.THRESHOLD
    num_bins: int = defaults.NUM_BINS
    from_logits: bool = False
    axis: int = -1
    num_classes: int | None = None
    ignore_index: int | None = None
    chunk_mb: float = DEFAULT_CHUNK_MB
    pred_key: str | None = None
    true_key: str | None = None
    devices: int = 1
    num_classes_from: str = "num_classes"
    pred_kind: str = defaults.PRED_KIND
    surface: SurfaceRequest | None = None
    spacing: tuple[float, ...] | None = None
    lesions: LesionRequest | None = None  # `--lesions`: see evaluate/lesions.py
    regions: Regions | None = None  # `--regions`: see evaluate/regions.py


@dataclasses.dataclass
class CaseTotals:
    """Exact totals of one case.

    Attributes:
        name: the case name (file name without suffix).
        pred, true: where the volumes came from.
        grid_shape: the voxel grid (the prediction's shape without its class axis).
        counts: int64 `[C, 4]`, columns `tp, fp, fn, tn` at the working threshold (of
            the hard prediction itself for label maps and masks).
        histogram: int64 `[C, B, 2]`, negatives and positives per score bin; None for
            hard predictions (they rank nothing).
        matrix: label maps only: int64 `[C, C]` confusion matrix, rows truth.
        surface: `{measure: float64 [C]}` boundary measures (`Options.surface`), or None.
    """

    name: str
    pred: str
    true: str
    grid_shape: tuple[int, ...]
    counts: np.ndarray | None
    histogram: np.ndarray | None
    matrix: np.ndarray | None = None
    surface: dict[str, np.ndarray] | None = None
    lesions: CaseLesions | None = None  # `--lesions`: see evaluate/lesions.py


@dataclasses.dataclass
class Evaluation:
    """What `evaluate` returns: the options, the threshold per class, and each case's totals."""

    options: Options
    threshold: np.ndarray
    cases: list[CaseTotals]
    pred_kind: str = "scores"

    @property
    def hard(self) -> bool:
        """The predictions were label maps or masks: counts only, no histograms."""
        return self.pred_kind in HARD_KINDS

    @property
    def num_classes(self) -> int:
        return self.threshold.shape[0]

    @property
    def counts(self) -> np.ndarray:
        """Pooled int64 `[C, 4]`: the sum over cases."""
        return np.sum([c.counts for c in self.cases], axis=0)

    @property
    def histogram(self) -> np.ndarray | None:
        """Pooled int64 `[C, B, 2]`: the sum over cases (None for hard predictions)."""
        if self.hard:
            return None
        return np.sum([c.histogram for c in self.cases], axis=0)


@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """How one case is cut: `rows` entries of `pred_axis` (`true_axis` in truth) per chunk."""

    pred_axis: int
    true_axis: int
    rows: int
    length: int

    @property
    def num_chunks(self) -> int:
        return math.ceil(self.length / self.rows)
