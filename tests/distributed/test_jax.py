"""JAX: `keras.distribution.DataParallel` over 4 virtual CPU devices, offline counts
sharded with `jax.sharding`, and a dataset split over 2 `jax.distributed` processes
(2 devices each) give the very counts of one device (integers compared exactly)."""

import numpy as np
import pytest

from tests.distributed import _case
from tests.distributed.conftest import (
    assert_same_numbers,
    check_reference,
    free_port,
    only_under,
    run_workers,
)

pytestmark = only_under("jax")


@pytest.fixture(scope="module")
def four_devices() -> dict:
    """DataParallel fit/evaluate and sharded offline counts, 4 virtual devices."""
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=4"}
    return run_workers("tests.distributed.jax_worker", [[]], env)[0]


def test_data_parallel_fit_and_evaluate_match_one_device(four_devices, one_device):
    check_reference(one_device)
    assert four_devices["devices"] == 4
    assert four_devices["data_parallel"]["predictions"] == one_device["predictions"]
    assert_same_numbers(one_device, four_devices["data_parallel"], returned=True)


def test_sharded_offline_counts_match_one_device(four_devices):
    y_true, y_pred = _case.scores()
    one = [np.asarray(t, np.int64).tolist() for t in _case.offline_totals(y_true, y_pred)]
    assert four_devices["offline_dtypes"] == ["int64", "int64"]
    assert four_devices["offline"] == one
    assert four_devices["big"] == [4 * (2**31 - 1)] * 2


def test_jax_distributed_processes_split_and_merge(one_device):
    """2 processes x 2 devices: each reads its share; `sharded_totals` merges over the
    4-device global mesh, `all_reduce_metrics` merges Keras metric states."""
    port = str(free_port())
    env = {"KERAS_BACKEND": "jax", "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    argvs = [[port, str(i), "2"] for i in range(2)]
    processes = run_workers("tests.distributed.jax_processes_worker", argvs, env)
    y_true, y_pred = _case.scores()
    one = [np.asarray(t, np.int64).tolist() for t in _case.offline_totals(y_true, y_pred)]
    assert sorted(p["share"][0] for p in processes) == [0, 1]
    for p in processes:
        assert (p["devices"], p["local_devices"]) == (4, 2)
        assert p["offline"] == one
        assert_same_numbers(one_device, p["merged"])
