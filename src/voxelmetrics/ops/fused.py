"""Counts at the working thresholds and the score histogram from one pass over the volume.

A report needs both: `confusion_counts` at the thresholds in use and `score_histogram` for
the curves. When every threshold is a bin edge $t_k = k / B$ (0.5 and 0.25 are, for every
even B), the counts are a row of the histogram's cumulative counts (`curve_counts`), so
the volume is read once; otherwise the direct count runs as well. The choice is made
in-graph (`xp.cond`), so traced thresholds (a calibrated variable) take the right branch
on every call.
"""

from voxelmetrics.backends import compile_kernel
from voxelmetrics.ops._host import xp
from voxelmetrics.ops._inputs import InputSpec, check_inputs
from voxelmetrics.ops._options import NUM_BINS, THRESHOLD, check_num_bins, check_threshold
from voxelmetrics.ops.counting import _check_voxel_count, _compiled_counts
from voxelmetrics.ops.curves import curve_counts
from voxelmetrics.ops.histogram import (
    _compiled_histogram,
    _uniform_edges,
    bin_index,
)


def threshold_bins(threshold, num_classes: int, num_bins: int):
    """`(k, on_grid)`: each class's threshold bin `[C]`, and whether all equal $t_k$ exactly.

    Example:
        >>> import numpy as np
        >>> k, on_grid = threshold_bins(np.float32([0.5, 0.25]), 2, num_bins=4)
        >>> np.asarray(k).tolist(), bool(on_grid)
        ([2, 1], True)
        >>> bool(threshold_bins(np.float32(0.3), 2, num_bins=4)[1])
        False
    """
    t = xp.broadcast_to(xp.reshape(xp.cast(threshold, "float32"), (-1,)), (num_classes,))
    k = xp.clip(bin_index(t, num_bins), 0, num_bins - 1)
    edge = xp.take(xp.convert_to_tensor(_uniform_edges(num_bins)), k)
    return k, xp.all(xp.equal(edge, t))


def counts_at_bins(histogram, k):
    r"""Per-class `tp, fp, fn, tn` at threshold $t_{k_c}$, read off a `[..., C, B, 2]`
    histogram with bins `k` `[..., C]`.

    Row $k_c$ of `curve_counts`: scores in bins $\ge k_c$ are the predicted positives, which
    is $s \ge t_{k_c}$ under the bin rule.

    Example:
        >>> import numpy as np
        >>> hist = np.array([[[3, 0], [1, 2]]])   # class 0: bin 0 = 3 neg; bin 1 = 1 neg, 2 pos
        >>> np.asarray(counts_at_bins(hist, np.int32([1]))).tolist()
        [[2, 1, 0, 3]]
    """
    rows = curve_counts(histogram)  # [..., C, B, 4]
    index = xp.expand_dims(xp.expand_dims(xp.cast(k, "int32"), -1), -1)  # [..., C, 1, 1]
    index = xp.broadcast_to(index, (*xp.shape(rows)[:-2], 1, 4))
    return xp.take_along_axis(rows, index, axis=-2)[..., 0, :]


def _fused_kernel(y_true, y_pred, threshold, sample_weight, mask, *, spec: InputSpec, num_bins):
    # The inner kernels are compiled ones: traced inline under jit, streamed under torch.
    histogram, invalid = _compiled_histogram(
        y_true, y_pred, sample_weight, mask, None, spec=spec, num_bins=num_bins, method="scatter"
    )

    def direct():
        counts, _ = _compiled_counts(
            y_true, y_pred, threshold, sample_weight, mask, spec=spec, per_sample=False
        )
        return counts

    if spec.has_weight:
        # Float sums of weights: summed per bin they round differently from a direct sum.
        return direct(), histogram, invalid
    k, on_grid = threshold_bins(threshold, spec.num_classes, num_bins)
    counts = xp.cond(on_grid, lambda: counts_at_bins(histogram, k), direct)
    return counts, histogram, invalid


_compiled_fused = compile_kernel(_fused_kernel, static_argnames=("spec", "num_bins"))


def counts_and_histogram(
    y_true,
    y_pred,
    threshold=THRESHOLD,
    num_bins: int = NUM_BINS,
    *,
    from_logits: bool | str = False,
    axis: int = -1,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    with_invalid: bool = False,
):
    r"""`confusion_counts(threshold)` and `score_histogram(num_bins)` in one pass.

    The same integers as the two ops called separately. When every class's threshold is a
    bin edge $t_k = k/B$ (checked in-graph), the counts are read off the histogram:
    $tp_c = \sum_{j \ge k_c} h_{c,j,1}$, predicted positives $= \sum_{j \ge k_c} h_{c,j}$,
    so the volume is read once. Other thresholds (and weighted counts, whose float sums
    would round differently) also take the direct count.

    Args:
        y_true, y_pred, from_logits, axis, sample_weight, mask, ignore_index: as in
            `confusion_counts`.
        threshold: scalar or `[C]` in [0, 1]: score >= threshold is positive.
        num_bins: `B`, bins of the uniform grid on [0, 1].
        with_invalid: also return the `[C]` tally of invalid scores (traced calls).

    Returns:
        `(counts [C, 4], histogram [C, B, 2])` as `confusion_counts` and `score_histogram`
        return them; with `with_invalid`, `(counts, histogram, invalid [C])`.

    Example:
        >>> import numpy as np
        >>> y_true = np.array([[1, 0], [0, 1], [1, 1]])
        >>> y_pred = np.array([[0.9, 0.2], [0.4, 0.6], [0.5, 1.0]], "float32")
        >>> counts, hist = counts_and_histogram(y_true, y_pred, 0.5, num_bins=2)
        >>> np.asarray(counts).tolist()   # tp, fp, fn, tn per class
        [[2, 0, 0, 1], [2, 0, 0, 1]]
        >>> np.asarray(hist)[1].tolist()   # class 1: one negative below .5, two positives above
        [[1, 0], [0, 2]]
    """
    spec = check_inputs(
        y_true,
        y_pred,
        axis=axis,
        from_logits=from_logits,
        sample_weight=sample_weight,
        mask=mask,
        ignore_index=ignore_index,
    )
    num_bins = check_num_bins(num_bins)
    check_threshold(threshold, spec.num_classes)
    if sample_weight is None:
        _check_voxel_count(y_pred, spec, per_sample=False)
    counts, histogram, invalid = _compiled_fused(
        y_true,
        y_pred,
        xp.convert_to_tensor(threshold, "float32"),
        sample_weight,
        mask,
        spec=spec,
        num_bins=num_bins,
    )
    return (counts, histogram, invalid) if with_invalid else (counts, histogram)
