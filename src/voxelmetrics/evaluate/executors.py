"""Executors that run `evaluate`'s cases in other processes: local ones, or a dask cluster.

`evaluate(..., executor=...)` takes any `concurrent.futures.Executor`; this module builds the
two the CLI offers and stops them cleanly on a failure or a signal:

- `process_pool(n)`: `n` local processes (`--workers N`), started with `spawn` (never
  `fork` once JAX or TensorFlow run threads: a forked child can deadlock on their locks),
  each on the driver's Keras backend and with its own chunk budget.
- `dask_executor(address)`: the executor of a running dask.distributed scheduler
  (`--scheduler ADDRESS`), `pip install 'voxelmetrics[dask]'`.

Each worker imports Keras and its backend and compiles the chunk kernel once: a few
seconds per worker (see README, "Scaling out: datasets").
"""

import contextlib
import multiprocessing
import multiprocessing.connection
import os
import signal
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

from voxelmetrics.evaluate.readers import InputError

DASK_EXTRA = "pip install 'voxelmetrics[dask]'"


STOP_GRACE_S = 5.0


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now, their running cases with them:
    SIGTERM, then SIGKILL for a worker still alive after `STOP_GRACE_S` (one that was
    still starting, or that a library taught to ignore SIGTERM)."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if not exited(process, 0):
            process.terminate()
    for process in processes:
        if not exited(process, STOP_GRACE_S):
            process.kill()
            exited(process, STOP_GRACE_S)


def exited(process, timeout: float) -> bool:
    """Whether `process` has ended, waiting up to `timeout` seconds. Asks its sentinel (a
    pipe the OS closes when the process ends), not `is_alive()`: that polls `waitpid`,
    which never reports a child another part of the program has already reaped."""
    return bool(multiprocessing.connection.wait([process.sentinel], timeout))


@contextlib.contextmanager
def process_pool(workers: int) -> Iterator[ProcessPoolExecutor]:
    """`workers` spawned local processes on the driver's Keras backend.

    `KERAS_BACKEND` is set in this process's environment to the backend Keras runs here,
    so that the children (which inherit the environment) import the same one. On leaving
    normally the pool is shut down; on an exception (a failing case, a signal) the cases
    not started are cancelled and the workers terminated, so that the process can exit.
    Use: `with process_pool(4) as pool: evaluate(y_true=..., y_pred=..., executor=pool)`.
    """
    import keras

    os.environ["KERAS_BACKEND"] = keras.backend.backend()
    # Ctrl-C reaches every process of the terminal's group: the workers ignore it, and the
    # driver stops them (no traceback from each). A stdlib initializer imports nothing.
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=signal.signal,
        initargs=(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()


@contextlib.contextmanager
def dask_executor(address: str) -> Iterator[Executor]:
    """The executor of the dask.distributed scheduler at `address` (`tcp://host:8786`).

    Tasks are submitted with `pure=False`: a case is evaluated again on every run, even
    when its paths (the task's arguments) are the same as before. The client is closed
    on leaving; on an exception the cases not started are cancelled first.

    Raises:
        InputError: dask.distributed is not installed, or the scheduler cannot be reached.
    """
    try:
        from distributed import Client
    except ImportError:
        raise InputError(
            f"--scheduler {address}", f"needs dask.distributed: {DASK_EXTRA}."
        ) from None
    try:
        client = Client(address, timeout="10s")
    except (OSError, ValueError) as e:
        raise InputError(
            f"--scheduler {address}", f"cannot reach the dask scheduler ({e})."
        ) from None
    executor = client.get_executor(pure=False)
    try:
        yield executor
    except BaseException:
        executor.shutdown(wait=False)
        raise
    finally:
        client.close()


def open_executor(workers: int = 1, scheduler: str | None = None):
    """The CLI's executor as a context manager: None (this process) for one worker and no
    scheduler, else `process_pool(workers)` or `dask_executor(scheduler)`."""
    if scheduler is not None:
        return dask_executor(scheduler)
    if workers > 1:
        return process_pool(workers)
    return contextlib.nullcontext()
