"""Every public op and metric with a batch size unknown until run time (issue 21 fault 3).

The names come from `voxelmetrics.__all__` and `voxelmetrics.metrics.__all__`; how to call
each is declared once per kind of first parameters (`KINDS`), so a new public function of a
known kind is tested without an edit, and one of a new kind fails `test_every_name_is_declared`.

Compiled the backend's way, with the batch axis left open: TensorFlow traces one
`tf.function` whose `input_signature` has a `None` batch, run at two batch sizes; JAX traces
with static shapes, so `jax.jit` is run at two batch sizes (two traces); PyTorch has no graph
mode that Keras' ops trace through, so the same two batch sizes run eagerly. Each result
must equal the eager call on the same data.
"""

import inspect

import keras
import numpy as np
import pytest

import voxelmetrics as vm
from tests.conftest import BACKEND, jax_jitted_update, to_numpy
from voxelmetrics import metrics
from voxelmetrics.metrics.surface import SurfaceScore

C, B = 2, 8  # classes, histogram bins
GRID = (5, 4, 3)  # a volume's spatial shape
BATCHES = (2, 3)

# Public names that take no tensor (or read a total out on the host): nothing to trace.
NOT_TRACED = {
    "Criterion": "a value object",
    "SurfaceDistances": "a result type",
    "ThresholdCalibration": "a callback: runs predict on the host",
    "bin_thresholds": "takes only num_bins",
    "empty_total": "takes a static shape",
    "exact_total": "the host readout of a total (outside a traced function by definition)",
    "calibration": "a module",
    "losses": "a module",
    "metrics": "a module",
    "__version__": "a string",
}


def _scores(rng, n):
    return rng.random((n, *GRID, C)).astype("float32")


def _multi_hot(rng, n):
    return (rng.random((n, *GRID, C)) < 0.4).astype("float32")


def _labels(rng, n):
    return rng.integers(0, C, (n, *GRID)).astype("int32")


def _counts(rng, n):
    return rng.integers(0, 50, (n, C, 4)).astype("int32")


def _histogram(rng, n):
    return rng.integers(0, 20, (n, C, B, 2)).astype("int32")


def _per_class(rng, n):
    return rng.random((n, C)).astype("float32")


def _total(rng, n):
    return np.stack([rng.integers(0, 3, (n, C)), rng.integers(0, 2**24, (n, C))], -1).astype(
        "int32"
    )


# Kind: the names of the first parameters -> (the tensor arguments built for batch n, the
# other arguments). Each tensor argument has the batch as its first axis.
KINDS = {
    ("y_true", "y_pred", "thresholds"): (
        lambda rng, n: (_multi_hot(rng, n), _scores(rng, n), np.float32([0.25, 0.5])),
        {"num_bins": B},
    ),
    ("y_true", "y_pred", "tolerance"): (lambda rng, n: (_multi_hot(rng, n), _scores(rng, n)), {}),
    ("y_true", "y_pred", "num_classes"): (lambda rng, n: (_labels(rng, n), _labels(rng, n)), {}),
    ("labels", "y_pred", "num_classes"): (lambda rng, n: (_labels(rng, n), _scores(rng, n)), {}),
    ("y_true", "y_pred"): (
        lambda rng, n: (_multi_hot(rng, n), _scores(rng, n)),
        {"num_bins": B},
    ),
    ("counts",): (lambda rng, n: (_counts(rng, n),), {}),
    ("histogram",): (lambda rng, n: (_histogram(rng, n),), {}),
    ("matrix",): (lambda rng, n: (rng.integers(0, 9, (n, C, C)).astype("int32"),), {}),
    ("values", "support"): (lambda rng, n: (_per_class(rng, n), _counts(rng, n)[..., 0]), {}),
    ("values",): (lambda rng, n: (_per_class(rng, n),), {}),
    ("numerator", "denominator"): (
        lambda rng, n: (_per_class(rng, n), _per_class(rng, n).round()),
        {},
    ),
    ("total", "counts"): (lambda rng, n: (_total(rng, n), _counts(rng, n)[..., 0]), {}),
    ("total",): (lambda rng, n: (_total(rng, n),), {}),
    ("scores", "num_bins"): (lambda rng, n: (_per_class(rng, n),), {"num_bins": B}),
}
# Positional options of a kind, by parameter name (after the tensors).
POSITIONAL = {"num_classes": C, "tolerance": 1.0, "num_bins": B}
# Required constructor arguments of the metrics, by parameter name.
METRIC_ARGUMENTS = {
    "min_precision": 0.5,
    "min_recall": 0.5,
    "specificity": 0.5,
    "sensitivity": 0.5,
    "tolerance": 1.0,
}


def _kind(fn) -> tuple[str, ...]:
    names = list(inspect.signature(fn).parameters)
    for kind in sorted(KINDS, key=len, reverse=True):
        if tuple(names[: len(kind)]) == kind:
            return kind
    raise AssertionError(f"{fn.__name__}{inspect.signature(fn)} is of no declared kind")


def _ops() -> list[str]:
    public = [n for n in vm.__all__ if n not in NOT_TRACED]
    return [n for n in public if not inspect.isclass(getattr(vm, n))]


def _metrics() -> list[str]:
    return sorted(set(metrics.__all__) | {n for n in vm.__all__ if n in metrics.__all__})


def test_every_name_is_declared():
    """Every public name is an op of a declared kind, a metric, the layer, or not traced."""
    for name in vm.__all__:
        obj = getattr(vm, name)
        if name in NOT_TRACED or name in metrics.__all__ or obj is vm.ApplyThresholds:
            continue
        assert callable(obj), name
        _kind(obj)
    assert set(NOT_TRACED) <= set(vm.__all__)


def _traced(fn, example_args):
    """`fn` compiled with the batch axis of every argument unknown (TensorFlow), or
    compiled per shape (JAX), or as it is (PyTorch)."""
    if BACKEND == "tensorflow":
        import tensorflow as tf

        signature = [
            tf.TensorSpec([None, *np.shape(a)[1:]], tf.as_dtype(np.asarray(a).dtype))
            for a in example_args
        ]
        return tf.function(fn, input_signature=signature, reduce_retracing=False)
    if BACKEND == "jax":
        import jax

        return jax.jit(fn)
    return fn


def _as_numpy(result) -> list:
    """Every leaf of a result as numpy; a Python string (a named convention) as it is."""
    return [x if isinstance(x, str) else to_numpy(x) for x in keras.tree.flatten(result)]


def _agree(traced, eager, name):
    assert len(traced) == len(eager), name
    for t, e in zip(traced, eager, strict=True):
        if isinstance(e, str):  # tf.function returns a string as a bytes tensor
            t = t if isinstance(t, str) else np.asarray(t).item()
            assert (t.decode() if isinstance(t, bytes) else t) == e, name
            continue
        assert t.shape == e.shape, name
        np.testing.assert_allclose(t, e, rtol=1e-6, atol=0, equal_nan=True, err_msg=name)


def _check(name, fn, make, tensor_count):
    rng = np.random.default_rng(0)
    data = {n: make(rng, n) for n in BATCHES}
    batched = [a for a in data[BATCHES[0]][:tensor_count]]
    rest = data[BATCHES[0]][tensor_count:]  # arguments without a batch axis (thresholds)

    def call(*tensors):
        return fn(*tensors, *rest)

    compiled = _traced(call, batched)
    for n in BATCHES:
        tensors = data[n][:tensor_count]
        _agree(_as_numpy(compiled(*tensors)), _as_numpy(call(*tensors)), f"{name}, batch {n}")


# Options that take another code path, tried on every op (and metric) that has them: the
# scatter-free histogram, float weights (a batched tensor: the sort-and-gather path of the
# exact ops), and anisotropic spacing (boundary percentiles ordered by the distances' bits).
VARIANTS = {
    "histogram_method": {"histogram_method": "sort"},
    "sample_weight": {},
    "spacing": {"spacing": (1.0, 1.5, 2.0)},
}


def _op_cases() -> list[tuple[str, str | None]]:
    cases = []
    for name in _ops():
        parameters = inspect.signature(getattr(vm, name)).parameters
        cases += [(name, None)] + [(name, v) for v in VARIANTS if v in parameters]
    return cases


@pytest.mark.parametrize(("name", "variant"), _op_cases())
def test_op_with_a_batch_unknown_until_run_time(name, variant):
    fn = getattr(vm, name)
    kind = _kind(fn)
    make, keywords = KINDS[kind]
    positional = [POSITIONAL[p] for p in kind if p in POSITIONAL]
    # The thresholds [C] of refine_threshold have no batch axis: passed as they are.
    batched = sum(1 for p in kind if p not in POSITIONAL and p != "thresholds")
    parameters = inspect.signature(fn).parameters
    keywords = {k: v for k, v in keywords.items() if k in parameters and k not in kind}
    keywords |= VARIANTS.get(variant, {})
    if variant == "sample_weight":
        unweighted = make

        def make(rng, n):  # the weights [N, *GRID, 1] ride along as the last batched tensor
            data = unweighted(rng, n)
            weight = rng.random((n, *GRID, 1)).astype("float32")
            return (*data[:batched], weight, *data[batched:])

        def call(*args):
            *data, weight = args[: batched + 1]
            return fn(*data, *args[batched + 1 :], *positional, sample_weight=weight, **keywords)

        _check(name, call, make, batched + 1)
        return
    _check(name, lambda *args: fn(*args, *positional, **keywords), make, batched)


def _metric_update(metric, example):
    """`metric.update_state` compiled with the batch unknown (TensorFlow), per shape
    through its stateless form (JAX), or as it is (PyTorch)."""
    if BACKEND == "jax":
        return jax_jitted_update(metric)
    return _traced(metric.update_state, example)


def _metric_cases() -> list[tuple[str, str | None]]:
    cases = []
    for name in _metrics():
        boundary = issubclass(getattr(metrics, name), SurfaceScore)  # spacing in **kwargs
        cases += [(name, None)] + [(name, "spacing")] * boundary
    return cases


@pytest.mark.parametrize(("name", "variant"), _metric_cases())
def test_metric_update_with_a_batch_unknown_until_run_time(name, variant):
    cls = getattr(metrics, name)
    parameters = inspect.signature(cls).parameters
    kwargs = {
        p: METRIC_ARGUMENTS[p]
        for p, v in parameters.items()
        if v.default is inspect.Parameter.empty and v.kind is not v.VAR_KEYWORD
    }
    kwargs |= VARIANTS.get(variant, {})
    # The state is built from num_classes (the boundary metrics pass it on to their op).
    kwargs["num_classes"] = C
    if "num_bins" in parameters:
        kwargs["num_bins"] = B
    traced_metric, eager_metric = cls(**kwargs), cls(**kwargs)
    rng = np.random.default_rng(1)
    data = {n: (_multi_hot(rng, n), _scores(rng, n)) for n in BATCHES}
    update = _metric_update(traced_metric, data[BATCHES[0]])
    for n in BATCHES:
        update(*data[n])
        eager_metric.update_state(*data[n])
    _agree(_as_numpy(traced_metric.result()), _as_numpy(eager_metric.result()), name)


def test_threshold_layer_with_a_batch_unknown_until_run_time():
    layer = vm.ApplyThresholds([0.3, 0.6])
    rng = np.random.default_rng(2)
    data = {n: (_scores(rng, n),) for n in BATCHES}
    layer.build(data[BATCHES[0]][0].shape)  # its variable is made outside the trace
    compiled = _traced(layer, data[BATCHES[0]])
    for n in BATCHES:
        _agree(_as_numpy(compiled(*data[n])), _as_numpy(layer(*data[n])), f"batch {n}")
