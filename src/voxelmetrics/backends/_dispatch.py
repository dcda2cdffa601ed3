"""Backend dispatch for counting (`bincount`), tracing detection and kernel compilation."""

import dataclasses
import functools
import inspect
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


def is_meta(x) -> bool:
    """True for a torch tensor on the "meta" device: shapes without values, as Keras' torch
    backend first tries when it infers output specs (it retries on a real device when the
    call raises)."""
    return _backend() == "torch" and bool(getattr(x, "is_meta", False))


def value_range(x) -> tuple[float, float]:
    """`(min, max)` of a concrete array or tensor as Python floats; NaN if any value is NaN.

    Backend tensors are reduced where they live (a GPU volume is not copied to the host);
    numpy arrays and lists with numpy. Empty input gives `(inf, -inf)`: nothing is out of
    range. TensorFlow's `reduce_min` may drop NaN, so there NaN is looked for separately.

    Example:
        >>> value_range(np.float32([0.5, 0.0, 1.0]))
        (0.0, 1.0)
    """
    if isinstance(x, np.ndarray | list | tuple | int | float | bool | np.generic):
        a = np.asarray(x)
        if not a.size:
            return float("inf"), float("-inf")
        return float(a.min()), float(a.max())
    if not int(np.prod(ops.shape(x))):
        return float("inf"), float("-inf")
    low, high = ops.min(x), ops.max(x)
    floating = ops.dtype(x).startswith(("float", "bfloat"))
    tensorflow = _backend() == "tensorflow"
    if tensorflow and floating and bool(ops.convert_to_numpy(ops.any(ops.isnan(x)))):
        return float("nan"), float("nan")
    return float(to_host(low)), float(to_host(high))


def to_host(x) -> np.ndarray:
    """A concrete tensor as a numpy array; float16 and bfloat16 as float32 (TensorFlow's
    bfloat16 tensors have no numpy form, and every count is made in float32 anyway)."""
    if not isinstance(x, np.ndarray) and ops.dtype(x) in ("float16", "bfloat16"):
        x = ops.cast(x, "float32")
    return np.asarray(ops.convert_to_numpy(x))


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


# Torch runs eager kernels op by op; each op over a whole volume writes a fresh full-size
# temporary (page-faulted memory on every call). Slabs of about this many scores keep the
# temporaries small enough to be reused from the allocator and to stay in cache.
STREAM_ELEMENTS = 1 << 19


@dataclasses.dataclass(frozen=True)
class Streaming:
    """What a kernel declares so that torch may run it slab by slab: the one place where
    `stream_kernel` learns the kernel's argument names.

    Attributes:
        voxel_args: the arguments laid out on the voxel grid, sliced per slab: full rank
            (class axis included, or of size 1), or grid-shaped and left-aligned (class axis
            absent, trailing axes broadcast) like sparse labels and weights. Every result of
            the kernel must be a sum over voxels, so that slab results add up.
        scores: the argument whose (full-rank, or grid) shape is the volume's.
        spec: the keyword argument holding the `InputSpec` (rank, class axis, C).
        per_sample: the keyword argument that, when True, keeps the sample axis 0 whole
            (results per sample), or None when the kernel has no such option.
    """

    voxel_args: tuple[str, ...]
    scores: str = "y_pred"
    spec: str = "spec"
    per_sample: str | None = None

    def check(self, fn: Callable) -> None:
        """Raise unless `fn` takes every argument this declaration names."""
        params = inspect.signature(fn).parameters
        named = (*self.voxel_args, self.scores, self.spec, self.per_sample)
        missing = [n for n in named if n is not None and n not in params]
        if missing:
            raise TypeError(f"{fn.__name__} declares streaming over {missing}, not its arguments.")


def set_row(buffer, index, row):
    """`buffer` `[n, ...]` with `buffer[index] = row`, inside a loop over `index`.

    XLA updates in place (`slice_update` of a loop's carry). Keras' torch loops run eagerly
    and its `slice_update` copies the whole buffer, so there the row is written in place
    (a loop that writes every row would copy `n` buffers).
    """
    if _backend() == "torch":
        buffer[index] = row
        return buffer
    return ops.slice_update(buffer, (index,) + (0,) * (len(buffer.shape) - 1), row[None])


def compile_kernel(
    fn: Callable,
    static_argnames: tuple[str, ...] = (),
    streaming: Streaming | None = None,
    tensorflow_jit: bool = False,
) -> Callable:
    """Compile `fn` for eager callers on the active backend; traced callers run it inline.

    Under JAX this is `jax.jit` (one fused XLA program instead of one dispatch per op).
    Under torch, a kernel whose results are sums over voxels (counts, histograms) declares
    how its arguments lie on the voxel grid (`Streaming`); a large eager call then runs slab
    by slab over one non-class axis (`stream_kernel`) and adds the slabs' results, which
    keeps every temporary at about `STREAM_ELEMENTS` scores. Other backends run the
    `keras.ops` code as it is, op by op, except a kernel built on loops (`tensorflow_jit`):
    TensorFlow runs an eager loop step by step from Python, so there it is compiled with
    `tf.function(jit_compile=True)` (static arguments by keyword, one trace per value).
    """
    if streaming is not None:
        streaming.check(fn)
    cache: dict[str, Callable] = {}

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        backend = _backend()
        if not all(is_concrete(a) for a in args if a is not None):
            return fn(*args, **kwargs)
        if backend == "torch" and streaming is not None:
            return stream_kernel(fn, args, kwargs, streaming)
        if backend == "tensorflow" and tensorflow_jit:
            if backend not in cache:
                import tensorflow as tf

                cache[backend] = tf.function(fn, jit_compile=True)
            return cache[backend](*args, **kwargs)
        if backend != "jax":
            return fn(*args, **kwargs)
        if backend not in cache:
            import jax

            cache[backend] = jax.jit(fn, static_argnames=static_argnames)
        return cache[backend](*args, **kwargs)

    return wrapper


def stream_kernel(fn: Callable, args: tuple, kwargs: dict, streaming: Streaming):
    """Run an additive kernel slab by slab along one voxel axis; return the summed results.

    Args:
        fn: kernel whose every result is a sum over voxels (so slab results add up).
        args, kwargs: its arguments.
        streaming: the kernel's declaration: which arguments lie on the voxel grid, and
            which hold the scores, the `InputSpec` and the per-sample switch.

    Streaming is for the CPU, where every op writes a fresh full-size temporary; tensors on
    an accelerator run whole. The slab axis is the first non-class axis (not the sample axis
    under `per_sample`) whose slices hold at most `STREAM_ELEMENTS` scores; a call that
    small already runs whole.
    """
    bound = inspect.signature(fn).bind(*args, **kwargs)
    spec = bound.arguments[streaming.spec]
    shape = _full_shape(bound.arguments[streaming.scores], spec)
    per_sample = streaming.per_sample is not None and bound.arguments[streaming.per_sample]
    plan = _slab_plan(shape, spec, per_sample)
    if plan is None:
        return fn(*args, **kwargs)
    axis, step = plan
    whole = {
        n: ops.convert_to_tensor(bound.arguments[n])
        for n in streaming.voxel_args
        if bound.arguments[n] is not None
    }
    if not on_cpu(whole.get(streaming.scores)):
        # A GPU runs each op over the whole volume in one launch; slabs would only multiply
        # the launches (about 6x slower on an H200 for 2x128^3x4 counts).
        return fn(**{**bound.arguments, **whole})
    total = None
    for start in range(0, shape[axis], step):
        part = bound.arguments.copy()
        for name, x in whole.items():
            part[name] = _slab(x, axis, start, step, shape, spec)
        result = fn(**part)
        total = result if total is None else _add(total, result)
    return total


def on_cpu(x) -> bool:
    """True unless `x` is a tensor on an accelerator (torch: its `device.type`)."""
    device = getattr(x, "device", None)
    return getattr(device, "type", "cpu") == "cpu"


def _full_shape(y_pred, spec) -> tuple[int, ...]:
    shape = tuple(y_pred.shape) if hasattr(y_pred, "shape") else np.shape(y_pred)
    if len(shape) == spec.ndim:
        return shape
    return (*shape[: spec.axis], spec.num_classes, *shape[spec.axis :])


def _slab_plan(shape: tuple[int, ...], spec, per_sample: bool) -> tuple[int, int] | None:
    """(axis, slab length) for a call over more than `STREAM_ELEMENTS` scores, else None.

    The first eligible axis whose single slices fit takes as many of them as fit; when no
    slice fits (a 1x384^3 volume: 590K scores per slice), the eligible axis with the
    smallest slices goes one slice at a time.
    """
    total = int(np.prod(shape))
    if total <= STREAM_ELEMENTS:
        return None
    eligible = [
        (total // size, axis)
        for axis, size in enumerate(shape)
        if axis != spec.axis and not (per_sample and axis == 0) and size > 1
    ]
    for per_index, axis in eligible:
        if per_index <= STREAM_ELEMENTS:
            return axis, STREAM_ELEMENTS // per_index
    return (min(eligible)[1], 1) if eligible else None


def _slab(x, axis: int, start: int, step: int, shape: tuple[int, ...], spec):
    """`x[start:start+step]` along full-rank `axis`, wherever `x` spans that axis."""
    rank = len(ops.shape(x))
    own = axis if rank == spec.ndim else (axis if axis < spec.axis else axis - 1)
    if own >= rank or ops.shape(x)[own] != shape[axis]:
        return x  # broadcast along this axis (size 1 or absent)
    index = [slice(None)] * rank
    index[own] = slice(start, start + step)
    return x[tuple(index)]


def _add(total, result):
    if isinstance(result, tuple | list):
        return type(result)(_add(a, b) for a, b in zip(total, result, strict=True))
    return total + result
