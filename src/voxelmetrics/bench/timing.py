"""The worker side: best-of-N wall times, the scaling exponent, peak RSS of one path."""

import gc
import sys
import time
from collections.abc import Callable

import numpy as np

from voxelmetrics.bench.data import scaling_shapes, synthetic_volume
from voxelmetrics.bench.paths import our_paths, path_builders

PROGRESS = "voxelmetrics-bench-progress: "


def progress(text: str) -> None:
    """One progress line from a worker, for `_spawn` to echo."""
    print(PROGRESS + text, file=sys.stderr, flush=True)


def best_time(fn: Callable, repeats: int, budget: float) -> dict:
    """Best wall time of `repeats` calls after one warm-up (compile) call."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(1 if first > budget else repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"seconds": min(times), "first_call_seconds": first, "calls": len(times)}


def _timed_or_error(build: Callable, repeats: int, budget: float) -> dict:
    """Set a path up and `best_time` it, or the error it raised (out of memory...)."""
    try:
        return best_time(build(), repeats, budget)
    except Exception as error:  # reported per path, so that one failure keeps the others
        return {"error": f"{type(error).__name__}: {str(error)[:160]}"}


def scaling_exponent(sizes: list[int], seconds: list[float]) -> float:
    """Least-squares slope of log(time) against log(size): 1.0 is linear."""
    return float(np.polyfit(np.log(sizes), np.log(seconds), 1)[0])


def worker(request: dict) -> dict:
    """Time every path on one volume under the backend this process imported."""
    import keras

    shape = tuple(request["shape"])
    y_true, y_pred = synthetic_volume(shape, request["seed"])
    times = {}
    wanted = request.get("paths")
    for name, build in path_builders(y_true, y_pred).items():
        if wanted is None or name in wanted:
            progress(f"timing {name}")
            times[name] = _timed_or_error(build, request["repeats"], request["budget"])
            gc.collect()  # the path's tensors go before the next path is set up
    out = {"backend": keras.backend.backend(), "times": times}
    if request["scaling"]:
        shapes = scaling_shapes(shape)
        seconds = []
        for s in shapes:
            progress(f"scaling: our report on {s}")
            yt, yp = synthetic_volume(s, request["seed"])
            path = our_paths(yt, yp)["ours_report"]
            seconds.append(best_time(path, request["repeats"], request["budget"])["seconds"])
        sizes = [int(np.prod(s)) for s in shapes]
        out["scaling"] = {
            "scores": sizes,
            "seconds": seconds,
            "exponent": scaling_exponent(sizes, seconds),
        }
    return out


def memory_worker(request: dict) -> dict:
    """Peak RSS (MiB) of one path's second call, above the process just before that call.

    The first call compiles; the peak is then reset (Linux `clear_refs`), so `extra_mb` is
    what the path itself allocates while it runs, inputs and compiled code excluded.
    """
    shape = tuple(request["shape"])
    y_true, y_pred = synthetic_volume(shape, request["seed"])
    fn = path_builders(y_true, y_pred)[request["path"]]()
    fn()
    gc.collect()
    _reset_peak_rss()
    before = _rss_kib("VmRSS")
    fn()
    after = _rss_kib("VmHWM")
    return {"peak_mb": round(after / 1024, 1), "extra_mb": round((after - before) / 1024, 1)}


def _reset_peak_rss() -> None:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _rss_kib(field: str) -> int:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in KiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")
