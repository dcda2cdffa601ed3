"""The local workers of `--workers N`: their threads, and their end with the driver."""

import ast
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import process as futures_process

import keras
import pytest

from tests.test_signals import group_members
from voxelmetrics._threads import case_threads, thread_settings
from voxelmetrics.evaluate.executors import process_pool

BACKEND = keras.backend.backend()
CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def _backend_threads(settings: dict) -> int:
    """The intra-op thread count the backend of this test run reports (XLA has none: its
    single-thread flag, when one thread)."""
    if BACKEND == "torch":
        return settings["torch"][0]
    if BACKEND == "tensorflow":
        return settings["tensorflow"][0]
    return 1 if "--xla_cpu_multi_thread_eigen=false" in (settings["XLA_FLAGS"] or "") else 0


@pytest.mark.parametrize(("workers", "threads"), [(2, None), (2, 1)])
def test_each_worker_takes_its_share_of_the_cores_or_threads(workers, threads):
    expected = threads or max(1, CORES // workers)
    before = dict(os.environ)
    with process_pool(workers, threads) as pool:
        reports = [pool.submit(thread_settings).result() for _ in range(2 * workers)]
    for settings in reports:
        assert settings["OMP_NUM_THREADS"] == settings["TF_NUM_INTRAOP_THREADS"] == str(expected)
        if BACKEND == "torch":
            assert settings["torch"] == (expected, expected)
        if BACKEND == "tensorflow":
            assert settings["tensorflow"] == (expected, expected)
        if BACKEND == "jax":  # XLA's pool size cannot be set: single-threaded Eigen for 1
            assert _backend_threads(settings) == (expected == 1)
    assert dict(os.environ) == before  # the driver's own is left as it was


def test_the_thread_rule():
    assert [case_threads(n, cores=8) for n in (1, 2, 3, 8, 16)] == [8, 4, 2, 1, 1]
    assert case_threads(4, threads=3, cores=8) == 3


THREADS_CHILD = r"""
import sys
sys.argv[0] = "voxelmetrics"
from voxelmetrics.cli import main
status = main(sys.argv[1:])
from voxelmetrics._threads import thread_settings
print(repr(thread_settings()))
sys.exit(status)
"""


def test_threads_option_sets_the_one_process_run(tmp_path):
    from tests.test_signals import _pair

    pred, true = _pair(tmp_path, cases=1)
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": os.pathsep.join(sys.path)}
    command = [sys.executable, "-c", THREADS_CHILD, "evaluate", pred, true, "--quiet"]
    run = subprocess.run(
        [*command, "--json", "--threads", "1"], env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stderr
    settings = ast.literal_eval(run.stdout.strip().splitlines()[-1])
    assert settings["OMP_NUM_THREADS"] == "1"
    assert _backend_threads(settings) == 1


DRIVER = r"""
import multiprocessing.resource_tracker as tracker, os, sys, time
from voxelmetrics.evaluate.executors import process_pool
with process_pool(2) as pool:
    [pool.submit(os.getpid).result() for _ in range(4)]
    busy = [pool.submit(time.sleep, 120) for _ in range(2)]
    while not all(f.running() for f in busy):
        time.sleep(0.05)
    print(*pool._processes, tracker._resource_tracker._pid, flush=True)
    time.sleep(120)
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads process states from /proc")
def test_workers_and_the_resource_tracker_end_when_the_driver_is_killed():
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": os.pathsep.join(sys.path)}
    driver = subprocess.Popen(
        [sys.executable, "-c", DRIVER],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        pids = [int(p) for p in driver.stdout.readline().split()]
        assert len(pids) == 3 and set(pids) <= set(group_members(driver.pid))
        driver.send_signal(signal.SIGKILL)
        driver.wait()
        deadline = time.monotonic() + 5
        while group_members(driver.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert group_members(driver.pid) == []
    finally:
        for pid in group_members(driver.pid):
            os.kill(pid, signal.SIGKILL)


SPAWNING_CHILD = r"""
import os, signal, threading, time
import keras
keras.ops.sum(keras.ops.ones(4))  # the backend's threads up, as in a run
from voxelmetrics.evaluate import executors
# Python's own Ctrl-C handler, as a terminal's run has it: a job started in the background
# by a shell inherits SIGINT ignored, and Python then installs none.
signal.signal(signal.SIGINT, signal.default_int_handler)
go, sent, reached = threading.Event(), threading.Event(), []

def other_thread():  # started before `_spawning`: SIGINT is not blocked here
    go.wait(60)
    os.kill(os.getpid(), signal.SIGINT)
    sent.set()

threading.Thread(target=other_thread, daemon=True).start()
try:
    with executors._spawning({}):
        go.set()
        assert sent.wait(60), "the other thread sent no SIGINT"
        for _ in range(100):  # the handler would run at one of these bytecodes
            time.sleep(0.002)
        reached.append("end of the spawning block")
except KeyboardInterrupt:
    print(reached, signal.getsignal(signal.SIGINT) is signal.default_int_handler, flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "pthread_sigmask"), reason="POSIX signal masks")
def test_a_sigint_another_thread_takes_while_workers_spawn_waits_until_they_are_spawned():
    """The kernel gives a process-directed SIGINT to a thread that does not block it (JAX's,
    TensorFlow's), and Python then runs the handler in the main thread, at any bytecode:
    while workers are spawned (`_spawning`) it must wait, or a child is left with an empty
    start-up pipe (CI saw its `EOFError: Ran out of input` traceback 1 run in 5 under load).
    Run in a process of its own: a signal to the test process could reach pytest itself.
    """
    env = {**os.environ, "KERAS_BACKEND": BACKEND, "PYTHONPATH": os.pathsep.join(sys.path)}
    run = subprocess.run(
        [sys.executable, "-c", SPAWNING_CHILD],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    # KeyboardInterrupt only once the block ended, then the handler restored.
    assert run.stdout.strip() == "['end of the spawning block'] True", (run.stdout, run.stderr)
    assert run.returncode == 0, run.stderr


def test_a_stopped_pool_leaves_no_manager_thread_for_the_exit_to_wake():
    """`_stop` waits for the pool's manager thread: Python 3.11 wakes the live ones at exit
    without a lock, and one closing its pipe meanwhile printed `Exception ignored in:
    <function _python_exit> ... Bad file descriptor` after a Ctrl-C (CI, 1 run in 3)."""
    with pytest.raises(RuntimeError, match="a failing case"), process_pool(1) as pool:
        manager = pool._executor_manager_thread
        raise RuntimeError("a failing case")
    assert not manager.is_alive()
    assert [w._closed for t, w in futures_process._threads_wakeups.items() if t is manager] in (
        [],
        [True],
    )
