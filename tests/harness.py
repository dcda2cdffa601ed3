"""One harness for every public metric: eager, compiled, config round trip, reset.

A `Case` is a metric class, its constructor keywords, the kind of input it reads (a key of
`INPUTS`: multi-hot scores, logits, one-hot, sparse ids, channels-first, ...) and a numpy
reference `reference(y_true, y_pred, kwargs)` of the whole data set (`tests/reference.py`).
`run_case` feeds the `VOLUMES` volumes of its input kind in batches of `BATCH`, the last
one partial, and checks:

- eager: `update_state` per batch; `result()` equals the reference on the concatenated
  data, so the state sum-merges exactly;
- compiled: the same batches through `model.evaluate` of an identity `keras.Model` whose
  `metrics` hold the case's metric, `jit_compile=True` on JAX and TensorFlow (XLA); PyTorch's
  `jit_compile` is `torch.compile`, which Keras leaves off ("auto"), so there `evaluate`
  runs its eager loop. The last step's logs (results computed in the graph) and the returned
  logs (results of the state the graph left) equal the eager result. One model per input
  kind holds every case of that kind (`compiled_logs`): the graphs are the expensive part,
  built once;
- config: the config holds every named constructor keyword of the case;
  `cls.from_config(m.get_config())` gives a metric with an equal config and equal results on
  the same batches; `keras.saving`'s serialize / deserialize the same class and config;
- reset: after `reset_state()` every state variable and the result are a fresh metric's.

To add a metric: export it in `voxelmetrics.metrics.__all__`, write (or reuse) its numpy
reference in `tests/reference.py` and add cases to `CASES` in `tests/metrics/test_harness.py`;
`test_every_public_metric_has_a_case` fails until a case exists. A new kind of input is a
generator in `INPUTS` (seeded, numpy only).
"""

import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

import keras
import numpy as np

from tests.reference import assert_close, one_hot

C = 3  # classes
GRID = (4, 5, 6)  # a volume's spatial shape
VOLUMES, BATCH = 5, 2  # batches of 2, 2 and 1 volumes: the last one partial
SEED = 20261125


# ----------------------------------------------------------------------------- inputs


def _grid_scores(rng, shape, steps=8):
    """float32 scores on the grid k / steps: many exactly on 0.5 and on the bin edges of
    16 bins (k / 8 = 2k / 16), where `score >= threshold` must count them."""
    return (rng.integers(0, steps + 1, shape) / steps).astype(np.float32)


def multilabel(rng):
    """Multi-hot truth `[N, *GRID, C]` and grid scores. Class 2 is absent from the truth
    (but predicted: false positives only); volume 0 is all positive in class 0, truth and
    scores (1.0); volume 1 predicts nothing in class 1."""
    shape = (VOLUMES, *GRID, C)
    truth = (rng.random(shape) < 0.35).astype(np.float32)
    scores = _grid_scores(rng, shape)
    truth[..., 2] = 0
    truth[0, ..., 0], scores[0, ..., 0] = 1, 1.0
    scores[1, ..., 1] = 0.0
    return truth, scores


def logits(rng):
    """Multi-hot truth and logits: some exactly 0 (sigmoid 0.5, on the threshold), some
    saturated (+-30); volume 2 has no truth in class 1."""
    shape = (VOLUMES, *GRID, C)
    truth = (rng.random(shape) < 0.4).astype(np.float32)
    z = rng.normal(0, 3, shape).astype(np.float32)
    z[rng.random(shape) < 0.1] = 0.0
    z[rng.random(shape) < 0.05] = 30.0
    z[rng.random(shape) < 0.05] = -30.0
    truth[2, ..., 1] = 0
    return truth, z


# Probability rows of exclusive classes: exact 0.5, bin edges, ties between classes.
_ROWS = np.float32(
    [[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.125, 0.375, 0.5], [1 / 3, 1 / 3, 1 / 3], [0, 0, 1]]
)


def _ids(rng):
    """Class ids `[N, *GRID]`; class 2 absent from volumes 0 and 1."""
    ids = rng.integers(0, C, (VOLUMES, *GRID))
    ids[:2] = np.minimum(ids[:2], 1)
    return ids


def one_hot_truth(rng):
    """One-hot truth and softmax-like rows (ties go to the lowest class under argmax)."""
    ids = _ids(rng)
    return one_hot(ids, C).astype(np.float32), _ROWS[rng.integers(0, len(_ROWS), ids.shape)]


def sparse(rng):
    """Integer ids `[N, *GRID]` and the rows of `one_hot_truth`."""
    ids = _ids(rng)
    return ids.astype(np.int32), _ROWS[rng.integers(0, len(_ROWS), ids.shape)]


def sparse_ignored(rng):
    """As `sparse`, with about 15% of the voxels labelled 255 (to be ignored)."""
    ids, scores = sparse(rng)
    ids[rng.random(ids.shape) < 0.15] = 255
    return ids, scores


def sparse_logits(rng):
    """Integer ids and logits of exclusive classes (softmax)."""
    ids = _ids(rng)
    return ids.astype(np.int32), rng.normal(0, 2, (*ids.shape, C)).astype(np.float32)


def channels_first(rng):
    """Multi-hot truth and continuous scores `[N, C, *GRID]` (class axis 1)."""
    shape = (VOLUMES, C, *GRID)
    truth = (rng.random(shape) < 0.4).astype(np.float32)
    return truth, np.clip(truth * 0.3 + rng.random(shape) * 0.7, 0, 1).astype(np.float32)


def masks(rng):
    """Boundary-friendly multi-hot masks: scores near the truth, noisy. Class 2 is empty in
    truth and prediction of volume 0 (undefined: left out of its mean)."""
    shape = (VOLUMES, *GRID, C)
    truth = (rng.random(shape) < 0.45).astype(np.float32)
    scores = np.clip(truth * 0.6 + rng.random(shape) * 0.5, 0, 1).astype(np.float32)
    truth[0, ..., 2], scores[0, ..., 2] = 0, 0.0
    return truth, scores


INPUTS: dict[str, Callable] = {
    "multilabel": multilabel,
    "logits": logits,
    "one_hot": one_hot_truth,
    "sparse": sparse,
    "sparse_ignored": sparse_ignored,
    "sparse_logits": sparse_logits,
    "channels_first": channels_first,
    "masks": masks,
}


@functools.cache
def data(kind: str) -> tuple[np.ndarray, np.ndarray]:
    """`(y_true, y_pred)` of `VOLUMES` volumes of an input kind; the same on every call."""
    return INPUTS[kind](np.random.default_rng(SEED))


def batches(kind: str) -> list[tuple[np.ndarray, np.ndarray]]:
    """The data of `kind` split along the volume axis into batches of `BATCH`."""
    y_true, y_pred = data(kind)
    return [(y_true[i : i + BATCH], y_pred[i : i + BATCH]) for i in range(0, VOLUMES, BATCH)]


# ----------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """A metric class with constructor keywords, its input kind and numpy reference.

    `reference(y_true, y_pred, kwargs)` gets the whole data set (as `data(kind)`) and the
    keywords (with the metric's `name`); it returns what `result()` returns: an array (per
    class or a scalar), or a dict of log entries. An array per class is named
    `{name}/{class}` where the metric has `class_names` and `average=None` (`logs_of`).
    """

    cls: type
    kwargs: dict
    kind: str
    reference: Callable
    rtol: float = 1e-5
    atol: float = 1e-6
    name: str = field(default="", compare=False)

    def expected(self):
        """The reference on the whole data of the case's kind (the keywords with `name`)."""
        return self.reference(*data(self.kind), {**self.kwargs, "name": self.name})

    def make(self, **extra):
        """A new metric of this case (named `name`, unique among the cases)."""
        return self.cls(**self.kwargs, name=self.name, **extra)


def named(cases: list[Case]) -> list[Case]:
    """The cases, each named `{Class}_{n}` (n counting the cases of its class): the name of
    its metric and its log entries, unique within a compiled model."""
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        n = seen.get(case.cls.__name__, 0)
        seen[case.cls.__name__] = n + 1
        out.append(Case(**{**case.__dict__, "name": f"{case.cls.__name__}_{n}"}))
    return out


def to_numpy(x) -> np.ndarray:
    """A backend tensor, variable or number as a numpy array."""
    return np.asarray(keras.ops.convert_to_numpy(x))


def logs_of(value, metric) -> dict[str, np.ndarray]:
    """A result (or a reference) as the flat log entries Keras makes of it: a dict as it is,
    per-class values of a metric with `class_names` and `average=None` as
    `{name}/{class}`, anything else as one entry `{name}`."""
    if isinstance(value, dict):
        return {k: to_numpy(v) for k, v in value.items()}
    value = to_numpy(value)
    names = getattr(metric, "class_names", None)
    if names and getattr(metric, "average", "") is None and value.shape == (len(names),):
        return {f"{metric.name}/{n}": value[i] for i, n in enumerate(names)}
    return {metric.name: value}


def assert_logs_equal(actual: dict, expected: dict, rtol: float, atol: float, what: str):
    """The same keys, and values equal within tolerance (NaN equals NaN, inf equals inf)."""
    assert sorted(actual) == sorted(expected), what
    for key, value in expected.items():
        assert_close(actual[key], value, rtol=rtol, atol=atol, err_msg=f"{what}: {key}")


def updated(metric, kind: str):
    """`metric` after `update_state` on every batch of `kind`, in order."""
    for y_true, y_pred in batches(kind):
        metric.update_state(y_true, y_pred)
    return metric


# ----------------------------------------------------------------------------- compiled


def _identity_model(kind: str, metrics: list):
    """An identity `keras.Model` over `y_pred`'s volume shape, compiled with `metrics`."""
    _, y_pred = data(kind)
    inputs = keras.Input(y_pred.shape[1:])
    model = keras.Model(inputs, keras.layers.Identity()(inputs))
    jit = keras.backend.backend() in ("jax", "tensorflow")
    model.compile(loss=lambda t, p: keras.ops.mean(p), metrics=metrics, jit_compile=jit)
    return model


class _LastStep(keras.callbacks.Callback):
    """Keeps the logs of the last test step: the results computed inside the compiled step
    (`evaluate`'s returned logs are computed again, eagerly, from the final state)."""

    def on_test_batch_end(self, batch, logs=None):
        self.logs = dict(logs)


def compiled_logs(kind: str, cases: list[Case]) -> dict[str, dict[str, np.ndarray]]:
    """`model.evaluate` over the data of `kind` in batches of `BATCH` (the last partial),
    every case's metric in one compiled model: `{"step": ..., "final": ...}`, the logs of
    the last compiled step (in-graph results) and the logs `evaluate` returns (the results
    of the state the compiled steps left)."""
    metrics = [case.make() for case in cases]
    y_true, y_pred = data(kind)
    model, last = _identity_model(kind, metrics), _LastStep()
    final = model.evaluate(
        y_pred, y_true, batch_size=BATCH, verbose=0, return_dict=True, callbacks=[last]
    )
    return {
        "step": {k: np.asarray(v) for k, v in last.logs.items()},
        "final": {k: np.asarray(v) for k, v in final.items()},
    }


# ----------------------------------------------------------------------------- the checks


def check_eager(case: Case):
    """Eager batches equal the reference on all the data, no value was left out as
    invalid (the case reads its inputs as they are meant); returns the updated metric."""
    metric = updated(case.make(), case.kind)
    assert not np.any(metric.invalid_count()), "invalid values: the case misreads its inputs"
    expected = logs_of(case.expected(), metric)
    assert_logs_equal(logs_of(metric.result(), metric), expected, case.rtol, case.atol, "eager")
    return metric


def check_compiled(case: Case, metric, logs: dict):
    """The compiled model's logs of `case`, in-graph ("step") and from the state the graph
    left ("final"), equal the eager result of `metric`."""
    eager = logs_of(metric.result(), metric)
    for when, entries in logs.items():
        assert_logs_equal({k: entries[k] for k in eager}, eager, 1e-5, 1e-6, f"compiled {when}")


def check_config(case: Case, metric):
    """`from_config(get_config())` rebuilds a metric with an equal config that gives equal
    results on the same batches; a serialize / deserialize round trip gives the same class
    and config."""
    config = metric.get_config()
    named = set(inspect.signature(case.cls).parameters) & set(case.kwargs)  # not **options
    assert named <= set(config), "the config leaves out a constructor argument"
    clone = case.cls.from_config(config)
    assert type(clone) is case.cls and clone.get_config() == config, "from_config"
    clone_logs = logs_of(updated(clone, case.kind).result(), clone)
    assert_logs_equal(clone_logs, logs_of(metric.result(), metric), 0, 0, "from_config")
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(metric))
    assert type(restored) is case.cls and restored.get_config() == config, "deserialize"


def check_reset(case: Case, metric):
    """After `reset_state()` every state variable and the result are a fresh metric's
    (built for `C` classes)."""
    metric.reset_state()
    known = "num_classes" in case.kwargs or "class_names" in case.kwargs
    fresh = case.make() if known else case.make(num_classes=C)
    assert [v.name for v in metric.variables] == [v.name for v in fresh.variables]
    for v, f in zip(metric.variables, fresh.variables, strict=True):
        np.testing.assert_array_equal(to_numpy(v), to_numpy(f), err_msg=f"reset: {v.name}")
    assert_logs_equal(
        logs_of(metric.result(), metric), logs_of(fresh.result(), fresh), 0, 0, "reset"
    )


def run_case(case: Case, logs: dict):
    """Every check of one case; `logs` are `compiled_logs` of its kind."""
    metric = check_eager(case)
    check_compiled(case, metric, logs)
    check_config(case, metric)
    check_reset(case, metric)


# ----------------------------------------------------------------------------- losses


@dataclass(frozen=True)
class LossCase:
    """A loss class with constructor keywords, its input kind and numpy reference
    `reference(y_true, y_pred, kwargs)`: the loss of the whole data set, a float."""

    cls: type
    kwargs: dict
    kind: str
    reference: Callable

    @property
    def name(self) -> str:
        options = ",".join(f"{k}={v}" for k, v in self.kwargs.items())
        return f"{self.cls.__name__}({options})-{self.kind}"


def run_loss_case(case: LossCase, compile_fn: Callable):
    """A stateless loss: eager equals the reference; `compile_fn(fn)` (the backend's graph
    compilation) gives the same value; the config round-trips (`from_config` and
    serialize / deserialize) to an equal config and the same value."""
    y_true, y_pred = data(case.kind)
    loss = case.cls(**case.kwargs)
    value = to_numpy(loss(y_true, y_pred))
    assert_close(value, case.reference(y_true, y_pred, case.kwargs), rtol=1e-5, atol=1e-6)
    assert_close(
        to_numpy(compile_fn(lambda t, p: loss(t, p))(y_true, y_pred)),
        value,
        rtol=1e-5,
        err_msg="compiled",
    )
    config = loss.get_config()
    named = set(inspect.signature(case.cls).parameters) & set(case.kwargs)
    assert named <= set(config), "the config leaves out a constructor argument"
    serialized = keras.saving.serialize_keras_object(loss)
    for clone in (case.cls.from_config(config), keras.saving.deserialize_keras_object(serialized)):
        assert type(clone) is case.cls and clone.get_config() == config
        assert_close(to_numpy(clone(y_true, y_pred)), value, rtol=0, atol=0, err_msg="clone")
