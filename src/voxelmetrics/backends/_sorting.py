"""The scatter-free histogram: sort each class's scores once, `searchsorted` the bin edges.

Scatter-add is slow or serialised on some accelerators (TPU) and on some CPU compilers; a
sort is not. Counting the scores at or above every edge from the sorted order gives the same
integers as the counting-sort (`bincount`) path, so each path checks the other.
"""

from keras import ops

from voxelmetrics.backends._dispatch import _backend, bincount


def sort_with_labels(keys, labels):
    """Sort `keys` `[C, M]` along the last axis, carrying the int32 `labels` `[C, M]` along.

    Order within a run of equal keys is unspecified: callers only read prefix sums at the
    boundaries between distinct keys, where it does not matter. JAX sorts both in one
    variadic sort and torch sorts once and gathers; other backends use `generic_sort_with_labels`.
    """
    fast = _FAST_SORT.get(_backend())
    return (fast or generic_sort_with_labels)(keys, labels)


def generic_sort_with_labels(keys, labels):
    """`sort_with_labels` through `keras.ops`: an argsort, then two gathers."""
    order = ops.argsort(keys, axis=-1)
    return ops.take_along_axis(keys, order, axis=-1), ops.take_along_axis(labels, order, axis=-1)


def _jax_sort_with_labels(keys, labels):
    import jax

    return tuple(jax.lax.sort((keys, labels), dimension=1, num_keys=1, is_stable=False))


def _torch_sort_with_labels(keys, labels):
    import torch

    sorted_keys, order = torch.sort(ops.convert_to_tensor(keys).contiguous(), dim=-1)
    return sorted_keys, torch.gather(ops.convert_to_tensor(labels), -1, order)


_FAST_SORT = {"jax": _jax_sort_with_labels, "torch": _torch_sort_with_labels}


def sorted_histogram(scores, positive, counted, edges):
    r"""Per-class `[C, B, 2]` histogram counts from sorted scores, without any scatter.

    With $n_c(t)$ the number of counted scores $s \ge t$ of class c and $p_c(t)$ the positives
    among them, bin k holds $n_c(e_k) - n_c(e_{k+1})$ scores ($n_c(e_B) = 0$), split into
    positives $p_c(e_k) - p_c(e_{k+1})$ and the rest. $n_c(e_k)$ is the number of counted
    scores minus `searchsorted(sorted scores, e_k, side="left")`, compared in float32 exactly
    as the bin rule compares; $p_c$ follows from the cumulative sum of the sorted labels.

    Args:
        scores: float32 `[C, M]`, one row per class.
        positive: bool `[C, M]`, the truth.
        counted: bool `[C, M]`: the score lies in the histogram's range and is not masked.
            Uncounted scores sort past every edge (as +inf) and carry no label.
        edges: float32 `[B]`, strictly increasing, finite: bin k starts at `edges[k]`; every
            counted score is at least `edges[0]`.

    Returns:
        int32 `[C, B, 2]`: negatives `[..., 0]`, positives `[..., 1]`.
    """
    num_classes = ops.shape(scores)[0]
    keys = ops.where(counted, scores, float("inf"))
    labels = ops.cast(ops.logical_and(positive, counted), "int32")
    keys, labels = sort_with_labels(keys, labels)
    total = ops.sum(ops.cast(counted, "int32"), axis=-1, keepdims=True)
    total_pos = ops.sum(labels, axis=-1, keepdims=True)
    below = ops.stack([searchsorted(keys[c], edges, side="left") for c in range(num_classes)])
    below = ops.cast(below, "int32")
    prefix = ops.concatenate([ops.zeros_like(labels[:, :1]), ops.cumsum(labels, axis=-1)], -1)
    at_or_above = total - below
    pos_at_or_above = total_pos - ops.take_along_axis(prefix, below, axis=-1)
    zero = ops.zeros_like(at_or_above[:, :1])
    all_bins = at_or_above - ops.concatenate([at_or_above[:, 1:], zero], axis=-1)
    pos_bins = pos_at_or_above - ops.concatenate([pos_at_or_above[:, 1:], zero], axis=-1)
    return ops.stack([all_bins - pos_bins, pos_bins], axis=-1)


def run_starts(sorted_keys):
    """For each element of the sorted rows `[C, M]`, the index of the first equal element.

    That index is how many elements are strictly smaller: the tie group's start. JAX and
    torch take a running maximum of the indices where a new value begins; other backends
    number the runs and prefix-sum their sizes (`generic_run_starts`). Both O(M), with no
    binary search.

    Example:
        >>> import numpy as np
        >>> np.asarray(run_starts(np.int32([[1, 1, 2, 5, 5, 5]]))).tolist()
        [[0, 0, 2, 3, 3, 3]]
    """
    fast = _FAST_RUN_STARTS.get(_backend())
    return (fast or generic_run_starts)(ops.convert_to_tensor(sorted_keys))


def generic_run_starts(sorted_keys):
    """`run_starts` in O(M) with a bincount: runs are numbered, sized, then prefix-summed.

    No branch on M: inside `tf.function` with an unknown batch M is a tensor, and the same
    ops serve M = 0 and 1 (the first run number comes from `sorted_keys[:, :1]`, empty then).
    """
    rows, size = ops.shape(sorted_keys)
    new = ops.cast(ops.not_equal(sorted_keys[:, 1:], sorted_keys[:, :-1]), "int32")
    first = ops.zeros_like(sorted_keys[:, :1], dtype="int32")
    run = ops.concatenate([first, ops.cumsum(new, axis=1)], axis=1)
    offset = ops.expand_dims(ops.arange(rows, dtype="int32") * size, 1)  # row c: bins c*M..
    sizes = ops.reshape(bincount(ops.reshape(run + offset, (-1,)), rows * size), (rows, size))
    return ops.take_along_axis(ops.cumsum(sizes, axis=1) - sizes, run, axis=1)


def _new_run_index(sorted_keys):
    """int32 `[C, M]`: the index where a new value begins, else 0."""
    rows, size = ops.shape(sorted_keys)
    if size < 2:
        return ops.zeros((rows, size), "int32")
    new = ops.not_equal(sorted_keys[:, 1:], sorted_keys[:, :-1])
    index = ops.arange(1, size, dtype="int32")
    starts = ops.where(new, ops.expand_dims(index, 0), 0)
    return ops.concatenate([ops.zeros_like(starts[:, :1]), starts], axis=1)


def _jax_run_starts(sorted_keys):
    import jax

    return jax.lax.cummax(_new_run_index(sorted_keys), axis=1)


def _torch_run_starts(sorted_keys):
    import torch

    return torch.cummax(_new_run_index(sorted_keys), dim=1).values


_FAST_RUN_STARTS = {"jax": _jax_run_starts, "torch": _torch_run_starts}


def searchsorted(sorted_sequence, values, side: str = "left"):
    """`keras.ops.searchsorted` (int32), without the O(N·M) comparison mesh under TF's XLA.

    TensorFlow lowers `tf.searchsorted` inside `jit_compile=True` to a broadcast comparison
    of every value with every element (terabytes for a volume's sorted scores), so there a
    binary search of ceil(log2(M + 1)) gathers runs instead; other backends use their own
    searchsorted. Same results: the index of the first element `>= v` ("left") or `> v`
    ("right").
    """
    if _backend() == "tensorflow":
        return binary_searchsorted(sorted_sequence, values, side)
    return ops.cast(ops.searchsorted(sorted_sequence, values, side=side), "int32")


def binary_searchsorted(sorted_sequence, values, side: str = "left"):
    """`searchsorted` as a vectorised binary search with static trip count (any backend).

    The trip count is ceil(log2(M + 1)) for a static length M; for a length known only at
    run time (a `tf.function` with an unknown batch) 31 steps, enough for any int32 M: the
    extra steps find `lo == hi` and change nothing.
    """
    size = ops.shape(sorted_sequence)[0]
    known = sorted_sequence.shape[0] if hasattr(sorted_sequence, "shape") else len(sorted_sequence)
    steps = max(1, known).bit_length() if known is not None else 31
    lo = ops.zeros(ops.shape(values), "int32")
    hi = ops.full(ops.shape(values), size, "int32")
    for _ in range(steps):
        mid = ops.right_shift(lo + hi, 1)
        probe = ops.take(sorted_sequence, ops.minimum(mid, size - 1))
        right = ops.less(probe, values) if side == "left" else ops.less_equal(probe, values)
        right = ops.logical_and(right, ops.less(mid, hi))
        lo = ops.where(right, mid + 1, lo)
        hi = ops.where(right, hi, mid)
    return lo
