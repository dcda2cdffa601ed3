"""One case read whole, for the measures that need every voxel at once (`--surface`,
`--lesions`): the arrays, the spacing, and how the class masks are read from them.

Chunked streaming serves the counts and histograms; a distance transform or a connected
component does not stop at a chunk's edge, so these measures read the case whole.
"""

import dataclasses

import numpy as np

from voxelmetrics.evaluate.readers import MASK_CUT, InputError
from voxelmetrics.evaluate.regions import region_masks
from voxelmetrics.evaluate.surface import case_spacing, read_whole


@dataclasses.dataclass
class WholeCase:
    """The arrays of one case and how to read class c from them.

    Attributes:
        y_true, y_pred: the whole arrays (the truth's ignore label turned into -1, no
            class; with `--regions`, the region masks `[..., R]` of both label maps).
        spacing: the voxel size of the spatial axes.
        threshold: scalar or `[C]`: a voxel of class c where `y_pred >= threshold[c]`
            (`MASK_CUT` for masks; unused for label maps).
        axis: the class axis of the arrays that have one.
        num_classes: the classes to measure (the ids present in this case for label maps of
            an inferred C, the regions with `--regions`).
        true_labels, pred_labels: which arrays are label maps.
    """

    y_true: np.ndarray
    y_pred: np.ndarray
    spacing: tuple[float, ...]
    threshold: object
    axis: int
    num_classes: int
    true_labels: bool
    pred_labels: bool

    def layout(self) -> dict:
        """How to read the classes: the keyword arguments of `surface.case_measures` after
        the two arrays (`lesions.case_lesions` takes the case itself)."""
        return {
            "spacing": self.spacing,
            "threshold": self.threshold,
            "axis": self.axis,
            "num_classes": self.num_classes,
            "true_labels": self.true_labels,
            "pred_labels": self.pred_labels,
        }


def read_case(pred, true, options, threshold, spec, kind: str, option: str) -> WholeCase:
    """Read one case whole for the measure of `option` (`--surface`, `--lesions`).

    Raises:
        InputError: logits (`--from-logits`; these measures threshold probabilities), a
            header spacing that disagrees (see `case_spacing`).
    """
    if kind == "scores" and options.from_logits:
        raise InputError(
            pred.path,
            f"holds logits (--from-logits); {option} thresholds probabilities or takes hard "
            "predictions: pass probabilities, label maps or masks.",
        )
    grid_ndim = len(pred.shape) - (kind != "labels")
    spatial_dims = len(options.spacing) if options.spacing is not None else min(3, grid_ndim)
    spacing = case_spacing(pred, true, options.spacing, spatial_dims)
    y_true, y_pred = read_whole(true), read_whole(pred)
    if spec.sparse and options.ignore_index is not None:
        y_true = np.where(y_true == options.ignore_index, -1, y_true)  # no class: outside
    num_classes = spec.num_classes
    if kind == "labels" and not options.num_classes:
        # C is inferred once every case is read: measure the ids present here; the classes
        # above them are absent from both maps (the callers pad them).
        num_classes = min(int(max(y_true.max(), y_pred.max())) + 1, num_classes)
    case = WholeCase(
        y_true,
        y_pred,
        spacing,
        threshold if kind == "scores" else MASK_CUT,
        spec.axis,
        max(num_classes, 1),
        spec.sparse,
        kind == "labels",
    )
    if options.regions:  # the region masks in place of the label maps (evaluate/regions.py)
        case.y_true, case.y_pred = (region_masks(y, options.regions) for y in (y_true, y_pred))
        case.num_classes, case.axis = len(options.regions), -1
        case.true_labels = case.pred_labels = False
    return case
