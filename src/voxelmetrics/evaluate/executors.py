"""Where `evaluate`'s cases run: in turn, one thread per JAX device, or on an executor (local
processes, or a dask cluster).

In this process `run_all` runs them in turn, or spread over the local JAX devices
(`local_devices`). `evaluate(..., executor=...)` takes any `concurrent.futures.Executor`
instead: `run_on` submits one `run_case_task` per case and takes the results in case order.
This module also builds the two executors the CLI offers and stops them cleanly on a
failure or a signal:

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
from collections.abc import Callable, Iterator
from concurrent.futures import BrokenExecutor, Executor, ProcessPoolExecutor, ThreadPoolExecutor

import keras
import numpy as np

from voxelmetrics._threads import apply_threads, case_threads, thread_environment
from voxelmetrics.evaluate.readers import InputError, open_volume
from voxelmetrics.evaluate.records import CaseTotals, Options
from voxelmetrics.evaluate.streaming import evaluate_case

DASK_EXTRA = "pip install 'voxelmetrics[dask]'"


STOP_GRACE_S = 5.0


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what has not started and end the workers now, their running cases with them:
    SIGTERM, then SIGKILL for a worker still alive after `STOP_GRACE_S` (one that was
    still starting, or that a library taught to ignore SIGTERM). Then wait (as long again
    at most) for the pool's manager thread to see them gone and close its wake-up pipe.

    Not waiting left a race at exit: Python 3.11's `concurrent.futures` wakes every
    manager thread at interpreter exit without the lock that the closing takes, and a pipe
    closed meanwhile printed `Exception ignored in: <function _python_exit> ... Bad file
    descriptor` after the program had stopped."""
    processes = list((getattr(pool, "_processes", None) or {}).values())  # shutdown forgets
    manager = getattr(pool, "_executor_manager_thread", None)
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if not exited(process, 0):
            process.terminate()
    for process in processes:
        if not exited(process, STOP_GRACE_S):
            process.kill()
            exited(process, STOP_GRACE_S)
    if manager is not None and manager is not threading.current_thread():
        manager.join(STOP_GRACE_S)


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
def _held_signals(signums: tuple[int, ...]) -> Iterator[None]:
    """In the main thread, Python's handlers of `signums` replaced by one that only records
    a signal, which is raised again (to the handlers restored) at the end; elsewhere, and
    for a handler set outside Python, nothing changes.

    Blocking a signal in one thread is not enough: the kernel gives it to another thread of
    the process (JAX's, TensorFlow's), and Python then runs the handler in the main thread
    all the same, at any bytecode.
    """
    held: list[int] = []
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {s: signal.getsignal(s) for s in signums}
        previous = {s: h for s, h in previous.items() if h is not None}
        for s in previous:
            signal.signal(s, lambda signum, frame: held.append(signum))
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        for s in dict.fromkeys(held):
            signal.raise_signal(s)


@contextlib.contextmanager
def _spawning(environment: dict[str, str]) -> Iterator[None]:
    """While workers are spawned: `environment` added to this process's (the children
    inherit it at start-up, before they import any backend), Ctrl-C and SIGTERM held back
    until the end (`_held_signals`), SIGINT blocked in this thread (so is it in the
    children until `_start_worker`); all restored.

    A signal handled between a child's spawn and the write of its start-up data would
    leave the child an empty pipe to read: an `EOFError` traceback on the terminal.
    """
    saved = {name: os.environ.get(name) for name in environment}
    os.environ.update(environment)
    blocking = hasattr(signal, "pthread_sigmask")
    try:
        with _held_signals((signal.SIGINT, signal.SIGTERM)):
            if blocking:
                mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
            try:
                yield
            finally:
                if blocking:  # a SIGINT that came meanwhile is held, raised after
                    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


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


def local_devices(requested: int) -> list:
    """The JAX devices to spread cases over: `[]` (no spreading) unless JAX runs with more
    than one local device and more than one is requested (0 requests all)."""
    if requested == 1 or keras.backend.backend() != "jax":
        return []
    import jax

    devices = jax.local_devices()
    devices = devices if requested == 0 else devices[:requested]
    return devices if len(devices) > 1 else []


def check_executor(executor: Executor, options: Options) -> None:
    """Refuse `devices` with an executor, and a process pool that forks: a child forked
    from a process running JAX's or TensorFlow's threads can deadlock on their locks."""
    if options.devices != 1:
        raise ValueError(
            f"devices={options.devices} spreads cases over the JAX devices of this process; "
            f"with an executor each worker runs its cases: pass devices=1 (or no executor)."
        )
    context = getattr(executor, "_mp_context", None)  # a ProcessPoolExecutor's
    if context is not None and context.get_start_method() == "fork":
        raise ValueError(
            "a ProcessPoolExecutor that forks can deadlock once Keras' backend runs threads: "
            "pass mp_context=multiprocessing.get_context('spawn'), or use "
            "voxelmetrics.evaluate.executors.process_pool(n)."
        )


def run_all(run: Callable[..., CaseTotals], num_cases: int, requested_devices: int) -> list:
    """`run(index[, device])` for every case: in turn, or one thread per JAX device."""
    devices = local_devices(requested_devices)
    if not devices:
        return [run(i) for i in range(num_cases)]
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        futures = [pool.submit(run, i, devices[i % len(devices)]) for i in range(num_cases)]
        return [f.result() for f in futures]


def run_case_task(
    name: str,
    pred_source,
    true_source,
    options: Options,
    threshold: np.ndarray,
    expected_from: str,
    backend: str | None = None,
) -> CaseTotals:
    """One case in a worker: open its volumes (a path or an array each), stream them, and
    return its `CaseTotals`. A top-level function of picklable arguments, so that any
    `concurrent.futures` executor can run it in another process or on another machine.

    Raises:
        InputError: as `evaluate_case` (it pickles whole: path and problem).
        InputError: also when the worker runs another Keras backend than `backend` (the
            driver's), so that every case is counted by the same kernels.
    """
    if backend is not None and keras.backend.backend() != backend:
        raise InputError(
            f"case {name}",
            f"this worker runs the Keras backend {keras.backend.backend()!r}, the driver "
            f"{backend!r}; start the workers with KERAS_BACKEND={backend}.",
        )
    pred = open_volume(pred_source, key=options.pred_key)
    true = open_volume(true_source, key=options.true_key)
    return evaluate_case(name, pred, true, options, threshold, expected_from=expected_from)


def _worker_deaths() -> tuple[type[BaseException], ...]:
    """The exceptions that say a worker died (not that its case was bad)."""
    deaths: list[type[BaseException]] = [BrokenExecutor]
    if "distributed" in sys.modules:
        deaths.append(sys.modules["distributed"].KilledWorker)
    return tuple(deaths)


def run_on(executor: Executor, cases, options, threshold, expected_from, on_case) -> list:
    """Every case as a `run_case_task` on `executor`, the results taken in case order.

    On the first failure (in case order) or an interruption, the cases not started are
    cancelled; a worker that died is reported as an `InputError` naming the case.
    """
    backend = keras.backend.backend()
    futures = [
        executor.submit(run_case_task, name, pred, true, options, threshold, expected_from, backend)
        for name, pred, true in cases
    ]
    totals = []
    try:
        for index, ((name, pred, _), future) in enumerate(zip(cases, futures, strict=True)):
            if on_case is not None:
                on_case(name, index, len(cases))
            try:
                totals.append(future.result())
            except _worker_deaths() as e:
                raise InputError(
                    pred if isinstance(pred, str | os.PathLike) else name,
                    f"the worker evaluating case {name!r} died ({type(e).__name__}: {e}); "
                    f"out of memory? Lower --chunk-mb or use fewer workers per machine.",
                ) from e
    finally:
        for future in futures:
            future.cancel()
    return totals
