"""How many intra-op threads a process evaluating cases gets, and setting them on each backend.

One rule (`case_threads`): a machine's cores are shared by the cases that run on it at once,
so `--workers N` gives every worker `cores // N` threads (at least 1), and `--threads T`
overrides it (for the one-process run too). Why: OpenMP and Eigen pools spin-wait when the
cores are oversubscribed; N workers of all cores' worth of threads each made one torch
`counts_and_histogram` 4-10x slower on 2 busy cores.

A thread count must be fixed before a backend starts its pools: `thread_environment` is set
in a worker's environment when it is spawned (before it imports Keras), `apply_threads`
sets what can still be set in a process whose backend is already imported (torch; TF
before its first op). XLA's CPU pool size cannot be set: with one thread, its Eigen
kernels run single-threaded (`--xla_cpu_multi_thread_eigen=false`).

Stdlib only: the CLI uses it before Keras is imported.
"""

import contextlib
import os
import sys

# The thread pools read from the environment at start-up: OpenMP (torch, MKL, OpenBLAS)
# and TensorFlow's two pools.
THREAD_VARIABLES = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
XLA_SINGLE_THREAD = "--xla_cpu_multi_thread_eigen=false"


def machine_cores() -> int:
    """The cores this process may run on (its affinity mask: a SLURM or container limit),
    else `os.cpu_count()`."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def case_threads(concurrent: int, threads: int | None = None, cores: int | None = None) -> int:
    """Intra-op threads of each of `concurrent` cases running at once on one machine.

    `threads` (the `--threads` option) when given, else `cores // concurrent`, at least 1.

    Example:
        >>> case_threads(2, cores=16), case_threads(3, cores=2), case_threads(2, 4, cores=16)
        (8, 1, 4)
    """
    if threads is not None:
        return threads
    return max(1, (machine_cores() if cores is None else cores) // max(1, concurrent))


def thread_environment(threads: int, environ=None) -> dict[str, str]:
    """The environment variables that give a process started with them `threads` threads:
    every pool's variable, and XLA's single-threaded Eigen flag added to the `XLA_FLAGS` of
    `environ` (default `os.environ`) when `threads == 1`.

    Example:
        >>> env = thread_environment(1, {"XLA_FLAGS": "--xla_dump_to=/tmp"})
        >>> env["OMP_NUM_THREADS"], env["XLA_FLAGS"]
        ('1', '--xla_dump_to=/tmp --xla_cpu_multi_thread_eigen=false')
    """
    environ = os.environ if environ is None else environ
    variables = dict.fromkeys(THREAD_VARIABLES, str(threads))
    flags = environ.get("XLA_FLAGS", "")
    if threads == 1 and "xla_cpu_multi_thread_eigen" not in flags:
        variables["XLA_FLAGS"] = f"{flags} {XLA_SINGLE_THREAD}".strip()
    return variables


def apply_threads(threads: int) -> None:
    """Give this process `threads` intra-op threads: its environment (for pools not started
    yet), torch's intra- and inter-op pools, TensorFlow's while it has run no op (after
    that TF keeps its pools: its environment variables were set too late)."""
    os.environ.update(thread_environment(threads))
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        torch.set_num_threads(threads)
        with contextlib.suppress(RuntimeError):  # fixed once torch ran inter-op work
            torch.set_num_interop_threads(threads)
    if "tensorflow" in sys.modules:
        import tensorflow as tf

        with contextlib.suppress(RuntimeError):  # fixed once TF's context is initialized
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)


def thread_settings() -> dict:
    """The thread settings in effect in this process, for every backend imported: what a
    worker reports (see `evaluate.executors.process_pool`)."""
    settings: dict = {name: os.environ.get(name) for name in (*THREAD_VARIABLES, "XLA_FLAGS")}
    if "torch" in sys.modules:
        torch = sys.modules["torch"]
        settings["torch"] = (torch.get_num_threads(), torch.get_num_interop_threads())
    if "tensorflow" in sys.modules:
        threading = sys.modules["tensorflow"].config.threading
        settings["tensorflow"] = (
            threading.get_intra_op_parallelism_threads(),
            threading.get_inter_op_parallelism_threads(),
        )
    return settings
