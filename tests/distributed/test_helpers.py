"""`all_reduce_metrics` and `process_split` in one process, under every backend: what is
merged, what is refused, and that one process is left as it is."""

import keras
import numpy as np
import pytest

from tests.distributed import _case
from voxelmetrics import metrics
from voxelmetrics.backends.distributed import (
    all_reduce_metrics,
    metric_variables,
    process_split,
)


def test_one_process_keeps_the_state_of_a_compiled_model():
    model, scores = _case.build_model()
    x, y = _case.volumes()
    model.evaluate(x, y, batch_size=4, verbose=0)
    before = _case.exact_states(scores)
    all_reduce_metrics(model)
    assert _case.exact_states(scores) == before


def test_metric_variables_lists_each_variable_once():
    dice = metrics.Dice(num_classes=2)
    assert len(metric_variables([dice, dice])) == len(dice.variables) == 4
    assert len(metric_variables(dice)) == 4


def test_a_state_not_merged_by_sum_is_refused():
    class Last(keras.metrics.Metric):
        def __init__(self):
            super().__init__(name="last")
            self.value = self.add_variable(shape=(), initializer="zeros", aggregation="mean")

    with pytest.raises(ValueError, match="aggregation='mean'"):
        all_reduce_metrics([metrics.Recall(num_classes=1), Last()])


def test_process_split_covers_the_dataset_once():
    items = np.arange(11)
    shares = [process_split(items, process_index=i, process_count=4) for i in range(4)]
    assert sorted(np.concatenate(shares).tolist()) == items.tolist()
    assert [len(s) for s in shares] == [3, 3, 3, 2]
    with pytest.raises(ValueError, match="process_index"):
        process_split(items, process_index=4, process_count=4)


@pytest.mark.skipif(keras.backend.backend() != "jax", reason="jax.sharding exists under jax only")
def test_sharded_totals_on_this_process_devices_match_a_direct_count():
    """The in-process mesh (one device unless XLA_FLAGS says more): int counts exact as
    int64, weighted (float32) sums as a plain psum."""
    from voxelmetrics import confusion_counts
    from voxelmetrics.backends.distributed import sharded_totals

    y_true, y_pred = _case.scores()
    weight = np.full(y_pred.shape[:-1], 0.5, np.float32)
    counts, histogram = sharded_totals(_case.offline_totals, y_true, y_pred)
    direct = _case.offline_totals(y_true, y_pred)
    assert counts.dtype == histogram.dtype == np.int64
    np.testing.assert_array_equal(counts, np.asarray(direct[0]))
    np.testing.assert_array_equal(histogram, np.asarray(direct[1]))
    weighted = sharded_totals(
        lambda t, p, w: confusion_counts(t, p, 0.5, sample_weight=w), y_true, y_pred, weight
    )
    assert weighted.dtype == np.float32
    np.testing.assert_array_equal(weighted, counts * 0.5)
