"""Exact int32 tallies of several boolean tensors, in one reduction over the volume.

Counting `tp`, the positives, the predicted positives, the voxels and the invalid scores as
five separate reductions reads the volume five times; XLA on CPU does not fuse sibling
reductions of compares well. Packing each voxel's flags into bit fields of one int32 and
summing blocks small enough that no field can carry gives the same integers in one pass.
"""

from keras import ops

MIN_BLOCK = 8


def count_true(flags: list, axes: tuple[int, ...]) -> list:
    """For each bool tensor in `flags`, the int32 number of True values summed over `axes`.

    Args:
        flags: bool tensors broadcastable to one static shape (at most 32 of them).
        axes: the axes of that shape to reduce, as non-negative indices.

    Returns:
        A list of int32 tensors, one per flag, with `axes` removed; exact below 2**31.

    Every backend takes `packed_count_true` (measured on 2x128^3x4 scores, 2 CPU cores:
    jax 2.6x, tensorflow 1.3x, torch eager 1.3x faster than five sums); the five separate
    sums (`generic_count_true`) stay as the reference the tests compare it with.
    """
    return packed_count_true(flags, axes)


def generic_count_true(flags: list, axes: tuple[int, ...]) -> list:
    """`count_true` as one `sum(cast(flag, int32))` per flag."""
    zero = _broadcast_zero(flags)
    return [ops.sum(ops.cast(f, "int32") + zero, axis=axes) for f in flags]


def _broadcast_zero(flags: list):
    """int32 zeros of the flags' broadcast shape, built by broadcasting itself: a dimension
    unknown until run time (a `None` batch under `tf.function`) needs no Python arithmetic."""
    zero = None
    for f in flags:
        term = ops.zeros_like(ops.cast(f, "int32"))
        zero = term if zero is None else zero + term
    return zero


def _block(shape: tuple, axes: tuple[int, ...], largest: int) -> tuple[int, int] | None:
    """The reduced axis and block size (a divisor of it, at most `largest`) to sum first."""
    best = None
    for a in axes:
        size = shape[a]
        if size is None:
            continue
        k = max((d for d in range(1, min(size, largest) + 1) if size % d == 0), default=1)
        if k >= MIN_BLOCK and (best is None or k > best[1]):
            best = (a, k)
    return best


def packed_count_true(flags: list, axes: tuple[int, ...]) -> list:
    r"""`count_true` in one reduction: flag i is bit field i of an int32 code.

    With $F$ flags each field has $b = \min(31, \lfloor 32 / F \rfloor)$ bits. Summing blocks of at
    most $2^b - 1$ codes along one reduced axis cannot carry out of a field (int32 wraps,
    so the top field may use the sign bit); the block sums are then unpacked and summed
    over the remaining axes. Falls back to `generic_count_true` when no reduced axis has a
    divisor between `MIN_BLOCK` and $2^b - 1$.
    """
    if not flags or len(flags) > 32:
        return generic_count_true(flags, axes)
    bits = min(31, 32 // len(flags))  # a 32-bit mask does not fit int32
    field = (1 << bits) - 1
    code = None
    for i, f in enumerate(flags):
        term = ops.left_shift(ops.cast(f, "int32"), bits * i) if i else ops.cast(f, "int32")
        code = term if code is None else code + term
    block = _block(tuple(code.shape), axes, field)  # None where unknown until run time
    if block is None:
        return generic_count_true(flags, axes)
    axis, k = block
    shape = ops.shape(code)  # static ints, and run-time sizes where unknown (tf.function)
    code = ops.reshape(code, (*shape[:axis], shape[axis] // k, k, *shape[axis + 1 :]))
    partial = ops.sum(code, axis=axis + 1)
    return [
        ops.sum(ops.bitwise_and(ops.right_shift(partial, bits * i), field), axis=axes)
        for i in range(len(flags))
    ]
