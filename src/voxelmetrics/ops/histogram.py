"""Per-class score histograms: one counting-sort pass gives every point of every curve.

The bin rule (docs/design.md) lives here (`bin_index`) and nowhere else.
"""

import numpy as np

from voxelmetrics.backends import (
    Streaming,
    bincount,
    compile_kernel,
    is_concrete,
    searchsorted,
    sorted_histogram,
)
from voxelmetrics.ops._host import xp
from voxelmetrics.ops._inputs import (
    InputSpec,
    check_inputs,
    class_ids,
    prepare,
    scores_and_invalid,
    static_shape,
)
from voxelmetrics.ops._options import NUM_BINS, check_num_bins


def bin_thresholds(num_bins: int):
    r"""The thresholds of a uniform grid on [0, 1]: $t_k = k / B$ in float32, k = 0..B-1.

    Args:
        num_bins: `B >= 1`.

    Returns:
        float32 `[B]`. Bin k of `score_histogram` holds scores $t_k \le s < t_{k+1}$;
        1.0 falls in bin B-1.

    Example:
        >>> import numpy as np
        >>> np.asarray(bin_thresholds(4)).tolist()
        [0.0, 0.25, 0.5, 0.75]
    """
    num_bins = check_num_bins(num_bins)
    return xp.convert_to_tensor(_uniform_edges(num_bins))


def _uniform_edges(num_bins: int) -> np.ndarray:
    # Divided on the host, IEEE-rounded: XLA rewrites an in-graph `k / B` as `k * (1 / B)`,
    # which rounds some edges one ulp away from float32(k) / float32(B).
    return np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)


def bin_index(scores, num_bins: int):
    r"""The bin of each score: the largest k with $t_k \le s$, compared in float32.

    `floor(s * B)` alone misplaces scores that sit on an edge (the product rounds), so the
    estimate is corrected by one step either way against the float32 edges themselves
    (`bin_thresholds`, looked up rather than recomputed in-graph). For a power-of-two B
    (the default 1024) the product and the edges are exact, and no correction is needed.
    The result is what makes histogram counts at $t_k$ equal a direct count of $s \ge t_k$.

    Args:
        scores: float32 `[...]`, expected in [0, 1].
        num_bins: `B`.

    Returns:
        int32 `[...]` in `[0, B)` for scores in [0, 1]; -1 for scores below 0; NaN
        gives an arbitrary bin: the caller masks it.

    Example:
        >>> import numpy as np
        >>> np.asarray(bin_index(np.float32([0.0, 0.3, 0.5, 1.0]), 4)).tolist()
        [0, 1, 2, 3]
    """
    clean = xp.where(xp.isnan(scores), 0.0, scores)
    if num_bins & (num_bins - 1) == 0:
        # B = 2**j: s * B and k / B are exact in float32, so floor(s * B) is the rule itself.
        return xp.cast(xp.floor(xp.clip(clean * float(num_bins), -1.0, num_bins - 1)), "int32")
    edges = xp.convert_to_tensor(_uniform_edges(num_bins))
    k = xp.cast(xp.floor(xp.clip(clean * float(num_bins), 0.0, num_bins - 1)), "int32")
    k = xp.where(xp.less(clean, xp.take(edges, k)), k - 1, k)
    up = xp.minimum(k + 1, num_bins - 1)
    return xp.where(xp.greater_equal(clean, xp.take(edges, up)), up, k)


def _edge_index(scores, edges):
    """Largest k with `edges[k] <= s` (searchsorted on custom sorted edges); -1 below edges[0]."""
    flat = xp.reshape(scores, (-1,))
    k = searchsorted(edges, flat, side="right") - 1
    return xp.reshape(xp.cast(k, "int32"), xp.shape(scores))


def _histogram_kernel(
    y_true, y_pred, sample_weight, mask, edges, *, spec: InputSpec, num_bins, method
):
    labels, weight, bad_label = prepare(y_true, sample_weight, mask, spec)
    if edges is None:
        scores, invalid = scores_and_invalid(y_pred, spec, bad_label)
        k = bin_index(scores, num_bins)
    else:
        scores = xp.cast(y_pred, "float32")
        edges = xp.cast(edges, "float32")
        k = _edge_index(scores, edges)
        invalid = xp.logical_not(xp.greater_equal(scores, edges[0]))
        if bad_label is not None:
            invalid = xp.logical_or(invalid, bad_label)
    if method == "sort":
        return _sorted_histogram(
            scores, labels, invalid, weight, edges, spec=spec, num_bins=num_bins
        )
    return binned_counts(k, labels, invalid, weight, spec, num_bins)


def binned_counts(bins, labels, invalid, weight, spec: InputSpec, num_bins: int):
    r"""One scatter-add of voxels into (class, bin, truth) cells: the histogram of every kernel.

    Each voxel of class c in bin k with label y lands in cell $(c B + k) 2 + y$; an invalid
    one in class c's trash cell $2CB + c$ (tallied), a masked-out one (bool `weight` False)
    in one dropped cell $2CB + C$. Float `weight` is summed instead of counted.

    Args:
        bins: int32 bin ids in `[0, B)`, broadcastable to the scores' shape.
        labels: bool, broadcastable to the scores' shape.
        invalid: bool, the scores' shape (from `scores_and_invalid`).
        weight: None, bool or float32 (from `prepare`).

    Returns:
        `([C, B, 2], [C])`: counts (int32, float32 with float weights) and the invalid tally.
    """
    c, b = spec.num_classes, num_bins
    shape = xp.shape(invalid)
    cid = class_ids(spec)
    ids = (cid * b + bins) * 2 + xp.cast(labels, "int32")
    ids = xp.where(invalid, 2 * c * b + cid, ids)
    if weight is not None and xp.dtype(weight) == "bool":
        ids = xp.where(weight, ids, 2 * c * b + c)
    ids = xp.reshape(xp.broadcast_to(ids, shape), (-1,))
    flat_weight = None
    if weight is not None and xp.dtype(weight) != "bool":
        flat_weight = xp.reshape(xp.broadcast_to(weight, shape), (-1,))
    counts = bincount(ids, 2 * c * b + c + 1, weights=flat_weight)
    return xp.reshape(counts[: 2 * c * b], (c, b, 2)), counts[2 * c * b : 2 * c * b + c]


def _sorted_histogram(scores, labels, invalid, mask, edges, *, spec: InputSpec, num_bins):
    """The scatter-free path (`backends.sorted_histogram`): the same counts, no scatter-add."""
    counted = xp.logical_not(invalid)
    if mask is not None:
        counted = xp.logical_and(counted, mask)
        invalid = xp.logical_and(invalid, mask)
    shape = xp.shape(scores)

    def rows(x):
        return xp.reshape(
            xp.moveaxis(xp.broadcast_to(x, shape), spec.axis, 0), (spec.num_classes, -1)
        )

    edges = _uniform_edges(num_bins) if edges is None else edges
    hist = sorted_histogram(rows(scores), rows(labels), rows(counted), xp.cast(edges, "float32"))
    return hist, xp.sum(xp.cast(rows(invalid), "int32"), axis=-1)


_compiled_histogram = compile_kernel(
    _histogram_kernel,
    static_argnames=("spec", "num_bins", "method"),
    streaming=Streaming(("y_true", "y_pred", "sample_weight", "mask")),
)
HISTOGRAM_METHODS = ("scatter", "sort")


def score_histogram(
    y_true,
    y_pred,
    num_bins: int = NUM_BINS,
    *,
    edges=None,
    from_logits: bool | str = False,
    axis: int = -1,
    sample_weight=None,
    mask=None,
    ignore_index: int | None = None,
    with_invalid: bool = False,
    on_invalid: str = "raise",
    histogram_method: str = "scatter",
):
    r"""Per-class histograms of negative and positive scores, in one counting-sort pass.

    Bin k of class c counts the voxels whose score s falls in $[t_k, t_{k+1})$ (1.0 in
    bin B-1), split by truth; with custom `edges`, bin k holds $e_k \le s < e_{k+1}$.
    Every curve point follows by a cumulative sum (`curve_counts`), so one O(N + C·B) pass
    replaces B threshold comparisons per voxel.

    Args:
        y_true: multi-hot `[..., C, ...]` {0, 1}, or sparse integer ids `[...]` (exclusive
            classes; `ignore_index` marks voxels to skip).
        y_pred: scores `[..., C, ...]`; probabilities in [0, 1], or logits with `from_logits`
            (True: sigmoid for multi-hot, softmax for sparse labels; or name one).
        num_bins: `B`, bins of the uniform grid on [0, 1]. Ignored when `edges` is given.
        edges: optional sorted float `[B]` thresholds, compared with the scores as passed
            (e.g. logit space with `from_logits=True`); a score below `edges[0]` is invalid.
        axis: the class axis of `y_pred`.
        sample_weight: optional weights broadcastable to the voxel grid (leading axes first);
            counts become float32 sums of weights.
        mask: optional bool, broadcastable to the voxel grid; False voxels are ignored.
        ignore_index: sparse label id to ignore.
        with_invalid: also return the per-class tally of invalid scores.
        on_invalid: "raise" (default) or "tally", as in `confusion_counts`.
        histogram_method: "scatter" (default) counts bin ids with a scatter-add
            (`backends.bincount`); "sort" sorts each class's scores once and `searchsorted`s
            the edges (`backends.sorted_histogram`): identical counts, O(N log N), for
            accelerators where scatter-add is slow (TPU), and as a cross-check. "sort"
            counts voxels: it takes a `mask` but not a `sample_weight`.

    Returns:
        `[C, B, 2]` counts, `[..., 0]` negatives and `[..., 1]` positives (int32, or float32
        with `sample_weight`); with `with_invalid`, also `[C]` counts of scores that were
        NaN or out of range (or sparse ids out of range) inside a traced call, which land in
        no bin. Eager calls raise on such values instead.

    Example:
        >>> import numpy as np
        >>> y_true = np.array([[1, 0], [0, 1], [1, 1]])
        >>> y_pred = np.array([[0.9, 0.2], [0.4, 0.6], [0.5, 1.0]], "float32")
        >>> h = np.asarray(score_histogram(y_true, y_pred, num_bins=2))
        >>> h[0].tolist()  # class 0: one negative in [0, .5), two positives in [.5, 1]
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
        on_invalid=on_invalid,
    )
    num_bins = check_num_bins(num_bins) if edges is None else _check_edges(edges)
    _check_method(histogram_method, sample_weight)
    hist, invalid = _compiled_histogram(
        y_true,
        y_pred,
        sample_weight,
        mask,
        edges,
        spec=spec,
        num_bins=num_bins,
        method=histogram_method,
    )
    return (hist, invalid) if with_invalid else hist


def _check_edges(edges) -> int:
    shape = static_shape(edges)
    if len(shape) != 1 or not shape[0]:
        raise ValueError(f"edges must be a non-empty 1-D array of thresholds; got shape {shape}.")
    if is_concrete(edges):
        e = np.asarray(xp.convert_to_numpy(edges), np.float32)
        if np.isnan(e).any() or np.any(np.diff(e) <= 0):
            raise ValueError("edges must be strictly increasing and free of NaN.")
    return shape[0]


def _check_method(method: str, sample_weight) -> None:
    if method not in HISTOGRAM_METHODS:
        raise ValueError(
            f"histogram_method must be one of {HISTOGRAM_METHODS}; received {method!r}."
        )
    if method == "sort" and sample_weight is not None:
        raise ValueError(
            'histogram_method="sort" counts voxels; sums of sample weights need "scatter".'
        )
