"""The array namespace of the formulas: `keras.ops` in-graph, numpy float64 on the host.

The score, curve and threshold formulas (`scores`, `curves`, `thresholds`, `bin_index`,
`counts_at_bins`) call their array functions through `xp` below (named as scikit-learn
names its array namespace, so that `ops.` always means `keras.ops`). By default it *is*
`keras.ops` (every public op keeps its signature, its traced behaviour and its backend
tensors). Inside `on_host()` the same names resolve to `HOST`: numpy with floats widened
to float64 and integers to int64, eager, no compilation. The offline report
(`evaluate/report.py` `scope_numbers`) runs the formulas that way on its int64 totals, so
each formula lives once and serves both.

Only the names the formulas use are in `HOST`; a formula that reaches for another one
fails loudly inside `on_host()` (AttributeError), never silently in-graph.

Example:
    >>> import numpy as np
    >>> from voxelmetrics.ops.scores import safe_ratio
    >>> with on_host():
    ...     r = safe_ratio(np.int64([1, 0]), np.int64([3, 0]))
    >>> type(r).__name__, r.dtype.name, r.tolist()[0] == 1 / 3
    ('ndarray', 'float64', True)
"""

import contextlib
import contextvars
import functools
import types

import keras
import numpy as np

_ON_HOST = contextvars.ContextVar("voxelmetrics_on_host", default=False)


@functools.cache
def _dtype(dtype):
    """The host dtype of a requested one: any float is float64, any integer int64."""
    if dtype is None:
        return None
    kind = "f" if str(dtype) == "bfloat16" else np.dtype(str(dtype)).kind
    return {"f": np.float64, "i": np.int64, "u": np.int64}.get(kind, np.dtype(str(dtype)))


def _widened(x) -> np.ndarray:
    """`x` as a numpy array, floats as float64 and integers as int64."""
    x = np.asarray(x)
    return x.astype(_dtype(x.dtype), copy=False) if x.dtype.kind in "fiu" else x


def _cast(x, dtype):
    return np.asarray(x).astype(_dtype(dtype), copy=False)


def _convert_to_tensor(x, dtype=None, sparse=None):
    return _widened(x) if dtype is None else _cast(x, dtype)


def _arange(start, stop=None, step=1, dtype=None):
    return np.arange(start, stop, step, dtype=_dtype(dtype))


def _cumsum(x, axis=None, dtype=None):
    return np.cumsum(x, axis=axis, dtype=_dtype(dtype))


def _zeros(shape, dtype="float32"):
    return np.zeros(shape, _dtype(dtype))


def _view(x, dtype):
    """The bits of `x` as `dtype`'s kind at `x`'s own width (float64 <-> int64 here)."""
    x = np.asarray(x)
    return x.view(np.dtype(f"{np.dtype(str(dtype)).kind}{x.dtype.itemsize}"))


def _while_loop(cond, body, loop_vars, maximum_iterations=None):
    loop_vars = tuple(loop_vars)
    steps = 0
    while cond(*loop_vars) and (maximum_iterations is None or steps < maximum_iterations):
        loop_vars, steps = tuple(body(*loop_vars)), steps + 1
    return loop_vars


def _take(x, indices, axis=None):
    """`np.take` by indexing: the same values (negative indices wrap, others out of range
    raise), several times faster for small integer indices such as uint8 codes, which
    `np.take` converts one at a time."""
    x = np.asarray(x)
    if axis is None:
        return x.reshape(-1)[indices]
    return x[(slice(None),) * (axis % x.ndim) + (np.asarray(indices),)]


def _pad(x, pad_width, mode="constant", constant_values=None):
    return np.pad(x, pad_width, mode=mode, constant_values=constant_values or 0)


HOST = types.SimpleNamespace(
    all=np.all,
    any=np.any,
    arange=_arange,
    broadcast_to=np.broadcast_to,
    cast=_cast,
    clip=np.clip,
    concatenate=np.concatenate,
    convert_to_numpy=np.asarray,
    convert_to_tensor=_convert_to_tensor,
    cumsum=_cumsum,
    dtype=lambda x: np.asarray(x).dtype.name,
    equal=np.equal,
    expand_dims=np.expand_dims,
    floor=np.floor,
    greater=np.greater,
    greater_equal=np.greater_equal,
    isfinite=np.isfinite,
    isinf=np.isinf,
    isnan=np.isnan,
    less=np.less,
    log=np.log,
    logical_and=np.logical_and,
    logical_not=np.logical_not,
    logical_or=np.logical_or,
    max=np.max,
    maximum=np.maximum,
    min=np.min,
    minimum=np.minimum,
    not_equal=np.not_equal,
    ones_like=np.ones_like,
    pad=_pad,
    reshape=np.reshape,
    round=np.round,
    shape=np.shape,
    sqrt=np.sqrt,
    square=np.square,
    stack=np.stack,
    sum=np.sum,
    take=_take,
    take_along_axis=np.take_along_axis,
    view=_view,
    where=np.where,
    while_loop=_while_loop,
    zeros=_zeros,
    zeros_like=np.zeros_like,
)


GRAPH = keras.ops


class _Namespace:
    """`GRAPH` (`keras.ops`), or `HOST` inside `on_host()`: resolved at each access."""

    def __getattr__(self, name):
        return getattr(HOST if _ON_HOST.get() else GRAPH, name)


xp = _Namespace()


def is_on_host() -> bool:
    """Whether the formulas run on the host now (inside `on_host()`)."""
    return _ON_HOST.get()


@contextlib.contextmanager
def on_host():
    """Run the formulas called inside in numpy float64 / int64 on the host (this thread or
    task only): numpy in, numpy out, nothing traced or compiled."""
    token = _ON_HOST.set(True)
    try:
        yield
    finally:
        _ON_HOST.reset(token)


def bitcast(x, dtype: str):
    """The bits of `x` read as `dtype` of the same width (`xp.view`), any shape. The view is
    taken on a unit last axis: Keras' TensorFlow `view` tests the last axis's size in
    Python, which fails inside `tf.function` when that size is unknown (a batch, or a
    point count, that the graph does not fix).

    Example:
        >>> import numpy as np
        >>> with on_host():
        ...     bitcast(np.float64([0.0, 1.0]), "int32").tolist()
        [0, 4607182418800017408]
    """
    return xp.view(xp.expand_dims(x, -1), dtype)[..., 0]
