"""TensorFlow: `tf.distribute.MirroredStrategy` over 2 logical CPU devices gives the very
counts of one device (integers compared exactly)."""

from tests.distributed.conftest import assert_same_numbers, check_reference, only_under, run_workers

pytestmark = only_under("tensorflow")


def test_mirrored_strategy_fit_and_evaluate_match_one_device(one_device):
    check_reference(one_device)
    (mirrored,) = run_workers("tests.distributed.tf_worker", [[]], {"KERAS_BACKEND": "tensorflow"})
    assert mirrored["replicas"] == 2
    assert mirrored["mirrored"]["predictions"] == one_device["predictions"]
    assert_same_numbers(one_device, mirrored["mirrored"], returned=True)
