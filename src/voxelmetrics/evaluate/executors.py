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

Every worker gets `case_threads` intra-op threads (`cores // N`, or `--threads`; see
`voxelmetrics._threads`). A local worker ignores Ctrl-C from its birth (the driver stops it)
and ends when the driver dies, even by SIGKILL (`_start_worker`).
"""

import collections
import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Executor, ProcessPoolExecutor

from voxelmetrics._threads import apply_threads, case_threads, thread_environment
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


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _start_worker(parent: int, death_signal: bool, threads: int) -> None:
    """A local worker's initializer: ignore Ctrl-C, end with the driver `parent`, and take
    `threads` intra-op threads (already in its environment: `_spawning`).

    Ctrl-C reaches every process of the terminal's group: the driver stops the workers, so
    they ignore it (no traceback from each). It was blocked since the worker was spawned
    (`_spawning`): one pressed while the worker imported Keras is discarded here. With
    `death_signal` (Linux, spawned by the driver's main thread: the signal follows the
    spawning thread) the kernel kills the worker when the driver dies; elsewhere a thread
    waits on the driver's sentinel. A driver already gone ends the worker at once.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if death_signal:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    else:
        parent_process = multiprocessing.parent_process()
        threading.Thread(target=_exit_with, args=(parent_process,), daemon=True).start()
    if os.getppid() != parent:  # the driver died before the death signal was set
        os._exit(1)
    apply_threads(threads)


def _exit_with(parent) -> None:
    """End this process once `parent` (a `multiprocessing` parent process) has ended."""
    if parent is not None:
        multiprocessing.connection.wait([parent.sentinel])
        os._exit(1)


@contextlib.contextmanager
def _spawning(environment: dict[str, str]) -> Iterator[None]:
    """While workers are spawned: `environment` added to this process's (the children
    inherit it at start-up, before they import any backend), SIGINT blocked (so is it in
    the children until `_start_worker`; here it arrives when unblocked). Both restored."""
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    blocking = hasattr(signal, "pthread_sigmask")
    if blocking:
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if blocking:  # last: a signal that came meanwhile is raised here
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)


@contextlib.contextmanager
def process_pool(workers: int, threads: int | None = None) -> Iterator[ProcessPoolExecutor]:
    """`workers` spawned local processes on the driver's Keras backend, each with
    `case_threads(workers, threads)` intra-op threads (`threads`: `--threads`).

    `KERAS_BACKEND` is set in this process's environment to the backend Keras runs here,
    so that the children (which inherit the environment) import the same one. Every worker
    is started here (see `_start_worker`: it ignores Ctrl-C and ends with this process). On
    leaving normally the pool is shut down; on an exception (a failing case, a signal) the
    cases not started are cancelled and the workers terminated, so that the process can exit.
    Use: `with process_pool(4) as pool: evaluate(y_true=..., y_pred=..., executor=pool)`.
    """
    import keras

    os.environ["KERAS_BACKEND"] = keras.backend.backend()
    count = case_threads(workers, threads)
    death_signal = sys.platform.startswith("linux") and (
        threading.current_thread() is threading.main_thread()
    )
    pool = ProcessPoolExecutor(
        workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(os.getpid(), death_signal, count),
    )
    try:
        with _spawning(thread_environment(count)):
            for _ in range(workers):  # each submit to a pool without an idle worker spawns one
                pool.submit(os.getpid)
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown()


def _set_dask_threads(client, threads: int | None) -> None:
    """Give every dask worker `case_threads` of the task slots on its host (its threads,
    summed over the host's workers), or `threads`. Set in running workers: torch's pools
    follow; TensorFlow's only if it has run no op there; XLA's not (see `apply_threads`)."""
    workers = client.scheduler_info(n_workers=-1)["workers"]
    slots: collections.Counter = collections.Counter()
    for info in workers.values():
        slots[info["host"]] += info["nthreads"]
    for host, concurrent in slots.items():
        on_host = [address for address, info in workers.items() if info["host"] == host]
        client.run(_apply_case_threads, concurrent, threads, workers=on_host)


def _apply_case_threads(concurrent: int, threads: int | None) -> None:
    """In a dask worker: `apply_threads(case_threads(concurrent, threads))` on its cores."""
    apply_threads(case_threads(concurrent, threads))


@contextlib.contextmanager
def dask_executor(address: str, threads: int | None = None) -> Iterator[Executor]:
    """The executor of the dask.distributed scheduler at `address` (`tcp://host:8786`),
    its workers given their share of threads (`_set_dask_threads`).

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
        _set_dask_threads(client, threads)
        yield executor
    except BaseException:
        executor.shutdown(wait=False)
        raise
    finally:
        client.close()


def open_executor(workers: int = 1, scheduler: str | None = None, threads: int | None = None):
    """The CLI's executor as a context manager: None (this process) for one worker and no
    scheduler, else `process_pool(workers, threads)` or `dask_executor(scheduler, threads)`."""
    if scheduler is not None:
        return dask_executor(scheduler, threads)
    if workers > 1:
        return process_pool(workers, threads)
    return contextlib.nullcontext()
