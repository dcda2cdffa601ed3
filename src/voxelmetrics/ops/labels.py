"""Saved segmentations: the exact confusion matrix of an integer label map against the truth.

A label map (`case.nii.gz` holding class ids 0..C-1, as nnU-Net, MONAI or an argmax write
it) is a hard prediction of exclusive classes; one bincount of `true * C + pred` counts it.
"""

import numpy as np

from voxelmetrics.ops._inputs import InputSpec, static_shape
from voxelmetrics.ops._options import check_int
from voxelmetrics.ops.counting import INT32_MAX, _compiled_matrix, sparse_confusion_matrix


def _check_same_grid(y_true, y_pred) -> None:
    true_shape, pred_shape = static_shape(y_true), static_shape(y_pred)
    if true_shape != pred_shape:
        raise ValueError(
            f"label_confusion_matrix expects a label map of the truth's shape {true_shape}; "
            f"y_pred has shape {pred_shape}. For scores use sparse_confusion_matrix."
        )
    voxels = int(np.prod([s for s in true_shape if s is not None]))
    if None not in true_shape and voxels > INT32_MAX:
        raise ValueError(
            f"One call counts at most 2**31 - 1 voxels in int32 (JAX without x64); this call "
            f"has {voxels}. Split the volume and add the matrices in int64 (numpy)."
        )


def label_confusion_matrix(
    y_true, y_pred, num_classes: int, *, ignore_index=None, mask=None, with_invalid: bool = False
):
    r"""`C x C` confusion matrix of an integer label map against integer labels, exact.

    $M_{ij} = \#\{v : y^{true}_v = i,\ y^{pred}_v = j,\ mask_v,\ y^{true}_v \ne ignore\}$,
    one bincount of $y^{true} \cdot C + y^{pred}$ over the voxels (jit-compiled under
    JAX, slab-streamed under torch, like the other kernels). Per-class one-vs-rest
    `tp, fp, fn, tn` follow with `counts_from_confusion_matrix(M)`.

    Args:
        y_true: integer class ids `[...]` (any integer, bool or integral float dtype).
        y_pred: integer class ids of the same shape `[...]`, e.g. a saved segmentation.
        num_classes: `C`; every id must lie in `[0, C)` (truth ids may equal `ignore_index`).
        ignore_index: truth id whose voxels are not counted (a void label).
        mask: optional bool, broadcastable to the voxel grid: True where a voxel counts.
        with_invalid: instead of checking the ids first (a pass over the data on the host),
            count the voxels whose truth or prediction id lies outside `[0, C)` and return
            that tally too: a streaming caller checks a whole slab with the count itself.

    Returns:
        int32 `[C, C]`, rows true class, columns predicted class; exact (one call counts at
        most 2**31 - 1 voxels: add chunks' matrices in int64 beyond that). With
        `with_invalid`, `(matrix, invalid)`, the out-of-range voxels left out of the matrix.

    Raises:
        ValueError: shapes differ, or (eager calls without `with_invalid`) an id lies
            outside `[0, C)`.

    Example:
        >>> import numpy as np
        >>> y_true = np.array([0, 1, 2, 2, 1])
        >>> y_pred = np.array([0, 2, 2, 1, 1])
        >>> np.asarray(label_confusion_matrix(y_true, y_pred, 3)).tolist()
        [[1, 0, 0], [0, 1, 1], [0, 1, 1]]
    """
    num_classes = check_int("num_classes", num_classes)
    _check_same_grid(y_true, y_pred)
    if not with_invalid:
        return sparse_confusion_matrix(
            y_true, y_pred, num_classes, ignore_index=ignore_index, mask=mask
        )
    rank = len(static_shape(y_true))
    spec = InputSpec(
        rank + 1, rank, num_classes, True, "none", ignore_index, False, mask is not None
    )
    return _compiled_matrix(y_true, y_pred, None, mask, spec=spec, scores_given=False)
