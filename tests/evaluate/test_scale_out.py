"""Evaluation past one process: cases on any executor, a dask cluster included.

Worker processes import Keras and its backend (seconds each), so the whole module starts
one dask `LocalCluster` (shared by a module fixture).
"""

import multiprocessing
import os
import pickle
import time
from concurrent.futures import ProcessPoolExecutor

import keras
import numpy as np
import pytest

import distributed
from voxelmetrics.evaluate import InputError
from voxelmetrics.evaluate.engine import Options, evaluate, run_case_task
from voxelmetrics.evaluate.executors import process_pool

BACKEND = keras.backend.backend()


@pytest.fixture(scope="module")
def cluster():
    """A dask cluster of 2 worker processes on this machine, on this backend."""
    with distributed.LocalCluster(
        n_workers=2,
        processes=True,
        threads_per_worker=1,
        dashboard_address=None,
        env={"KERAS_BACKEND": BACKEND},
    ) as local:
        yield local


def test_an_executor_of_arrays_gives_the_totals_of_this_process(cluster, rng):
    cases = []
    for i in range(3):
        y_true = (rng.random((6, 5, 4, 2)) < 0.4).astype(np.uint8)
        cases.append((f"c{i}", y_true, rng.random(y_true.shape).astype(np.float32)))
    options = Options(num_bins=16)
    with distributed.Client(cluster) as client:
        spread = evaluate(cases=cases, options=options, executor=client.get_executor(pure=False))
    here = evaluate(cases=cases, options=options)
    assert [c.name for c in spread.cases] == ["c0", "c1", "c2"]
    for a, b in zip(here.cases, spread.cases, strict=True):
        np.testing.assert_array_equal(a.counts, b.counts)
        np.testing.assert_array_equal(a.histogram, b.histogram)


def test_input_errors_cross_processes_whole():
    error = pickle.loads(pickle.dumps(InputError("pred/case3.npy", "holds NaN scores.")))
    assert (error.path, error.problem) == ("pred/case3.npy", "holds NaN scores.")
    assert str(error) == "pred/case3.npy: holds NaN scores."


def test_a_worker_on_another_backend_is_refused():
    y_true = np.zeros((4, 2), np.uint8)
    threshold = np.float32([0.5, 0.5])
    with pytest.raises(InputError, match="start the workers with KERAS_BACKEND=other"):
        run_case_task("c0", y_true.astype(np.float32), y_true, Options(), threshold, "", "other")


def test_an_interrupted_pool_stops_its_workers_at_once():
    start = time.perf_counter()
    with pytest.raises(KeyboardInterrupt), process_pool(2) as pool:
        assert pool.submit(os.getenv, "KERAS_BACKEND").result() == BACKEND  # spawned
        futures = [pool.submit(time.sleep, 60) for _ in range(4)]
        while not futures[0].running():
            time.sleep(0.05)
        processes = list(pool._processes.values())
        raise KeyboardInterrupt
    for process in processes:
        process.join(10)
        assert not process.is_alive()
    assert time.perf_counter() - start < 30
    while not all(f.done() for f in futures):  # cancelled, or failed with the pool
        assert time.perf_counter() - start < 30
        time.sleep(0.05)


def test_a_forking_pool_and_devices_with_an_executor_are_refused():
    y_true = np.zeros((4, 2), np.uint8)
    cases = [("c0", y_true, y_true.astype(np.float32))]
    forking = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork"))
    with pytest.raises(ValueError, match="get_context\\('spawn'\\)"):
        evaluate(cases=cases, executor=forking)
    forking.shutdown()
    with pytest.raises(ValueError, match="pass devices=1"):
        evaluate(cases=cases, options=Options(devices=2), executor=forking)
