"""The fused state: exact past 2**32, jit-safe (stateless API), invalid scores tallied."""

import keras
import numpy as np
import pytest

from tests.conftest import jax_jitted_update, to_numpy
from tests.reference import assert_close, reference_counts
from voxelmetrics import metrics

BACKEND = keras.backend.backend()
INT32_MAX = 2**31 - 1


def test_state_arithmetic_stays_exact_past_2_to_the_32(rng):
    """Totals are int32 limbs on every backend (JAX without x64 included)."""
    m = metrics.ConfusionCounts(num_classes=2)
    expected = np.zeros((2, 4), np.int64)
    for big in (True, True, True, False, True):
        counts = (
            np.full((2, 4), INT32_MAX, np.int32)
            if big
            else rng.integers(0, 2**31, (2, 4)).astype(np.int32)
        )
        m._accumulate("count_total", keras.ops.convert_to_tensor(counts))
        expected += counts
    assert expected.max() > 2**33
    np.testing.assert_array_equal(m.result(), expected)
    recall = metrics.Recall(num_classes=2, average=None)
    recall._accumulate("count_total", keras.ops.convert_to_tensor(expected.astype(np.int32) * 0))
    for _ in range(3):
        recall._accumulate("count_total", keras.ops.convert_to_tensor(np.int32([[3, 0, 1, 0]] * 2)))
    assert_close(to_numpy(recall.result()), [0.75, 0.75])


@pytest.mark.skipif(BACKEND != "jax", reason="jax.jit drives the stateless API")
def test_update_state_under_jax_jit_counts_past_2_to_the_32_voxels():
    """4097 jitted stateless updates of 2**20 voxels: 2**32 + 2**20 voxels, no host sync."""
    import jax

    rng = np.random.default_rng(0)
    truth = (rng.random((1, 64, 128, 128, 1)) < 0.3).astype(np.int8)
    scores = rng.random((1, 64, 128, 128, 1)).astype(np.float32)
    m = metrics.ConfusionCounts(num_classes=1)
    steps = 4097

    @jax.jit
    def run(variables, truth, scores):
        def body(_, v):
            return m.stateless_update_state(v, truth, scores)

        return jax.lax.fori_loop(0, steps, body, variables)

    variables = run([v.value for v in m.variables], truth, scores)
    for v, value in zip(m.variables, variables, strict=True):
        v.assign(value)
    expected = reference_counts(truth.astype(bool), scores >= np.float32(0.5)) * steps
    assert expected.sum() == steps * 2**20 > 2**32
    np.testing.assert_array_equal(m.result(), expected)
    traced = jax.jit(m.stateless_result)(variables)
    assert str(traced.dtype) == "float32"
    assert_close(np.asarray(traced), expected, rtol=1e-6)


def _traced(metric):
    """metric.update_state compiled by the backend's tracer (no concrete values inside)."""
    if BACKEND == "jax":
        return jax_jitted_update(metric)
    if BACKEND == "tensorflow":
        import tensorflow as tf

        return tf.function(metric.update_state)
    return None


@pytest.mark.parametrize("traced", [False, True], ids=["eager", "traced"])
def test_nan_and_out_of_range_scores_are_tallied_eager_or_traced(rng, traced):
    """Metrics never raise on values: eager updates (torch's `fit`) tally as traced ones."""
    truth = (rng.random((2, 4, 4, 3)) < 0.5).astype(np.float32)
    scores = rng.random((2, 4, 4, 3)).astype(np.float32)
    scores[0, 0, 0, 1] = np.nan
    scores[1, 2, 3, 2] = 1.5
    report = metrics.SegmentationReport(num_classes=3)
    update = (_traced(report) if traced else None) or report.update_state
    update(truth, scores)
    np.testing.assert_array_equal(report.invalid_count(), [0, 1, 1])
    valid = ~np.isnan(scores) & (scores <= 1)
    counts = reference_counts(truth.astype(bool) & valid, (scores >= 0.5) & valid)
    counts[:, 3] -= (~valid).reshape(-1, 3).sum(0)
    np.testing.assert_array_equal(report._exact("count_total"), counts)
    assert float(to_numpy(report.result()["invalid"])) == 2


def test_state_is_built_from_num_classes_or_the_first_update():
    m = metrics.Dice()
    assert m.variables == []
    with pytest.raises(ValueError, match="num_classes"):
        m.result()
    m = metrics.Dice(num_classes=2)
    assert len(m.variables) == 4


@pytest.mark.parametrize(
    "cls",
    [metrics.Recall, metrics.F1Score, metrics.AveragePrecision, metrics.SamplewiseDice],
)
def test_public_metrics_are_classes_with_their_real_signature(cls):
    import inspect

    parameters = inspect.signature(cls).parameters
    assert {"average", "class_names", "mode", "axis", "name"} <= set(parameters)
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())
    m = cls(num_classes=2)
    assert m.name == cls.default_name and "Standalone usage" in cls.__doc__
    clone = cls.from_config(m.get_config())
    assert type(clone) is cls and clone.get_config() == m.get_config()
