"""Backend dispatch for counting (`bincount`), tracing detection and kernel compilation."""

import functools
from collections.abc import Callable

import keras
import numpy as np
from keras import ops


def _backend() -> str:
    return keras.backend.backend()


def is_concrete(x) -> bool:
    """True when `x` holds values readable on the host now (not a tracer or graph tensor).

    Eager entry points use this to validate values (NaN, range) and raise clear errors;
    traced code cannot, so it tallies invalid values instead.
    """
    if isinstance(x, np.ndarray | np.generic | int | float | bool):
        return True
    if isinstance(x, keras.KerasTensor):
        return False
    backend = _backend()
    if backend == "jax":
        import jax

        return not isinstance(x, jax.core.Tracer)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.executing_eagerly() and not isinstance(x, tf.Variable | tf.SparseTensor)
    if backend == "torch":
        import torch

        return not torch.compiler.is_compiling()
    return True


def bincount(ids, length: int, weights=None):
    """Count how often each integer in `[0, length)` occurs in the flat `ids`.

    Args:
        ids: int32 tensor `[N]`, values in `[0, length)`.
        length: static number of bins.
        weights: optional float tensor `[N]`; then the result is the sum of weights per bin.

    Returns:
        `[length]` counts: int32 when unweighted (exact below 2**31 per bin, on every
        backend), float32 when weighted.

    The generic `keras.ops.segment_sum` scatters in float32 under torch, which stops
    counting exactly at 2**24; torch therefore uses `torch.bincount` (int64) here.
    """
    fast = _FAST_BINCOUNT.get(_backend())
    return (fast or generic_bincount)(ids, length, weights)


def generic_bincount(ids, length: int, weights=None):
    """`bincount` through `keras.ops.segment_sum` (scatter-add), for every backend."""
    data = ops.ones_like(ids, dtype="int32") if weights is None else ops.cast(weights, "float32")
    return ops.segment_sum(data, ids, num_segments=length)


def _torch_bincount(ids, length: int, weights=None):
    import torch

    ids_t = ops.convert_to_tensor(ids).reshape(-1).long()
    w = None if weights is None else ops.convert_to_tensor(weights, "float32").reshape(-1)
    counts = torch.bincount(ids_t, weights=w, minlength=length)
    return counts.float() if w is not None else counts.int()


_FAST_BINCOUNT = {"torch": _torch_bincount}


def compile_kernel(fn: Callable, static_argnames: tuple[str, ...] = ()) -> Callable:
    """Compile `fn` for eager callers on the active backend; traced callers run it inline.

    Under JAX this is `jax.jit` (one fused XLA program instead of one dispatch per op);
    other backends run the `keras.ops` code as it is, op by op.
    """
    cache: dict[str, Callable] = {}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        backend = _backend()
        if backend != "jax" or not all(is_concrete(a) for a in args if a is not None):
            return fn(*args, **kwargs)
        if backend not in cache:
            import jax

            cache[backend] = jax.jit(fn, static_argnames=static_argnames)
        return cache[backend](*args, **kwargs)

    return wrapper
