"""Running totals of counts that stay exact to 2**55 with 32-bit integers only.

JAX without x64 has no int64 and float32 stops counting at 2**24, so a total is held as two
int32 limbs, `total = hi * 2**24 + lo` with `0 <= lo < 2**24`. Merging two totals is a plain
sum (all-reduce SUM works on the limbs); `accumulate` carries the low limb back into range.

On the host the other way round: `exact_linear` runs a linear integer op on int64 totals
through int32 limbs, exact for any total on every backend (`exact_counts`: one-vs-rest
counts of a confusion matrix).
"""

import math
from collections.abc import Callable

import numpy as np
from keras import ops

from voxelmetrics.ops.counting import counts_from_confusion_matrix

LIMB_BITS = 24
LIMB = 1 << LIMB_BITS


def empty_total(shape: tuple[int, ...]):
    """A zero total for counts of `shape`: int32 `[*shape, 2]` (hi, lo)."""
    return ops.zeros((*tuple(shape), 2), dtype="int32")


def accumulate(total, counts):
    r"""`total + counts`, exact, with the low limb carried back into $[0, 2^{24})$.

    Args:
        total: int32 `[..., 2]` limbs (hi, lo); the low limbs of up to 127 totals summed by
            an all-reduce stay exact until the next `accumulate` normalises them.
        counts: non-negative integer counts `[...]` of one call (int32, each < 2**31).

    Returns:
        int32 `[..., 2]`: the new total, exact while it is below 2**55.

    Example:
        >>> import numpy as np
        >>> t = empty_total((2,))
        >>> for _ in range(3):
        ...     t = accumulate(t, np.int32([2**31 - 1, 5]))
        >>> exact_total(t).tolist()
        [6442450941, 15]
    """
    total, counts = ops.cast(total, "int32"), ops.cast(counts, "int32")
    lo = total[..., 1] + ops.bitwise_and(counts, LIMB - 1)
    hi = total[..., 0] + ops.right_shift(counts, LIMB_BITS) + ops.right_shift(lo, LIMB_BITS)
    return ops.stack([hi, ops.bitwise_and(lo, LIMB - 1)], axis=-1)


def exact_total(total) -> np.ndarray:
    """The exact integer value of a total, as a numpy int64 array `[...]` (host side)."""
    limbs = np.asarray(ops.convert_to_numpy(total)).astype(np.int64)
    return limbs[..., 0] * LIMB + limbs[..., 1]


def total_as_float(total):
    """float32 approximation of a total (relative error below 2**-24), usable in-graph."""
    limbs = ops.cast(total, "float32")
    return limbs[..., 0] * float(LIMB) + limbs[..., 1]


def add_counts(total, weighted, counts):
    """One batch into a running `(total, weighted)` pair: integer counts exactly into the
    int32 limbs `total`, float32 (weighted) sums into the float32 `weighted`.

    Sums of sample weights are not integers, so a state that may see both kinds of batch
    keeps both parts; its value is `pair_as_float` (in-graph) or `pair_exact` (host).

    Returns:
        the new `(total, weighted)`.

    Example:
        >>> import numpy as np
        >>> pair = (empty_total((2,)), np.zeros(2, "float32"))
        >>> pair = add_counts(*pair, np.int32([3, 4]))
        >>> pair = add_counts(*pair, np.float32([0.5, 0.0]))
        >>> pair_exact(*pair).tolist()
        [3.5, 4.0]
    """
    if "int" in str(ops.dtype(ops.convert_to_tensor(counts))):
        return accumulate(total, counts), weighted
    return total, ops.cast(weighted, "float32") + ops.cast(counts, "float32")


def pair_as_float(total, weighted):
    """float32 value of a `(total, weighted)` pair, usable in-graph."""
    return total_as_float(total) + ops.cast(weighted, "float32")


def pair_exact(total, weighted) -> np.ndarray:
    """The host value of a pair: int64 while no weighted batch was added, else float64."""
    exact = exact_total(total)
    weights = np.asarray(ops.convert_to_numpy(weighted))
    return exact if not weights.any() else exact + weights.astype(np.float64)


def exact_linear(fn: Callable, values: np.ndarray, terms: int) -> np.ndarray:
    """int64 `fn(values)` for a linear integer op `fn` (sums and differences of at most
    `terms` entries, e.g. `counts_from_confusion_matrix`, `counts_at_bins`), exact for any
    int64 `values` >= 0 on every backend, JAX without x64 included (a negative one raises
    `ValueError`: counts are never negative).

    `fn` is linear, so `values` is split into limbs narrow enough that `terms` of them sum
    within int32, `fn` runs on each limb, and the results are shifted back and added in
    numpy int64.

    Example:
        >>> import numpy as np
        >>> exact_linear(lambda x: x.sum(keepdims=True), np.int64([2**40, 3]), 2).tolist()
        [1099511627779]
    """
    values = np.asarray(values, np.int64)
    if values.size and values.min() < 0:  # >> keeps a negative value negative: no end
        raise ValueError(f"exact_linear takes counts >= 0; got {values.min()}.")
    bits = max(1, 30 - math.ceil(math.log2(max(terms, 1) + 1)))
    total, shift = None, 0
    while total is None or (values >> shift).any():
        limb = ((values >> shift) & ((1 << bits) - 1)).astype(np.int32)
        part = np.asarray(ops.convert_to_numpy(fn(limb))).astype(np.int64) << shift
        total = part if total is None else total + part
        shift += bits
    return total


def exact_counts(matrix: np.ndarray) -> np.ndarray:
    """int64 `[C, 4]` one-vs-rest counts of an int64 `[C, C]` confusion matrix, exact
    (`counts_from_confusion_matrix` through `exact_linear`)."""
    matrix = np.asarray(matrix, np.int64)
    return exact_linear(counts_from_confusion_matrix, matrix, matrix.size)
