"""`voxelmetrics bench`: time the fused report against Keras, torchmetrics, scikit-learn, a floor.

Every backend runs in its own worker process (`KERAS_BACKEND` is read once, when Keras is
imported); inside one worker all paths see the same volume, so the ratios are like for like.
"""

import argparse
import collections
import functools
import gc
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import numpy as np

BACKENDS = ("jax", "tensorflow", "torch")
SIZES = {
    "tiny": (1, 16, 16, 16, 4),
    "small": (1, 32, 32, 32, 4),
    "default": (2, 128, 128, 128, 4),
    "large": (1, 384, 384, 384, 4),
}
NUM_BINS = 1024
PROGRESS = "voxelmetrics-bench-progress: "
# The targets are stated for volumes of the default size or larger: on smaller ones fixed
# per-call costs (dispatch, a Python loop over classes) dominate and a verdict means nothing.
VERDICT_MIN_SCORES = 2 * 128**3 * 4
THRESHOLD = 0.5
# torchmetrics' binned multilabel PR curve materialises int64 [N, C, T] tensors; chunk its
# updates so that those stay below this many bytes, as a user with bounded memory would.
TORCHMETRICS_CHUNK_BYTES = 1 << 30

# (name, peer path, our path, target, higher_is_better). A ratio is peer_time / our_time.
COMPARISONS = (
    ("Keras AUC+F1+P/R(class_id) / our report", "keras_report", "ours_report", 5.0),
    ("Keras P/R(class_id) / our fused counts", "keras_counts", "ours_counts", 3.0),
    ("Keras AUC(1024, PR) / our 1024-bin histogram", "keras_auc", "ours_hist_scatter", None),
    ("torchmetrics StatScores / our counts", "tm_stat_scores", "ours_counts", 10.0),
    ("torchmetrics PRCurve(100) / our report", "tm_prc_100", "ours_report", 10.0),
    ("torchmetrics PRCurve(1000) / our report", "tm_prc_1000", "ours_report", 10.0),
    ("sklearn mcm+PR curves+AP / our report", "sklearn", "ours_report", 30.0),
    ("sklearn mcm+PR curves+AP / our exact mode", "sklearn", "ours_exact", 3.0),
    ("scatter histogram / sorted-score histogram", "ours_hist_scatter", "ours_hist_sort", None),
)
PATH_NOTES = {
    "floor": "one sum over y_pred",
    "ours_report": "counts@0.5 + 1024-bin histogram + PR curves + AP + ROC/PR-AUC + best-F1",
    "ours_counts": "fused tp/fp/fn/tn per class",
    "ours_exact": "counts + exact (sort-based) PR curves + AP",
    "ours_hist_scatter": "score_histogram, scatter (bincount) path",
    "ours_hist_sort": "score_histogram, sorted-score path",
    "keras_report": "AUC(1024, PR, multi_label) + F1Score(None) + Precision/Recall(class_id=c)",
    "keras_counts": "Precision/Recall(class_id=c) for every c",
    "keras_auc": "AUC(num_thresholds=1024, curve='PR', multi_label=True) alone",
    "tm_stat_scores": "torchmetrics MultilabelStatScores(average=None)",
    "tm_prc_100": "torchmetrics MultilabelPrecisionRecallCurve(thresholds=100), chunked*",
    "tm_prc_1000": "torchmetrics MultilabelPrecisionRecallCurve(thresholds=1000), chunked*",
    "sklearn": "multilabel_confusion_matrix + precision_recall_curve per class + AP",
}


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of `voxelmetrics bench` to `parser`."""
    parser.add_argument(
        "--size",
        choices=sorted(SIZES),
        default="default",
        help="volume (B, D, H, W, C): " + ", ".join(f"{k}={v}" for k, v in SIZES.items()),
    )
    parser.add_argument("--large", action="store_const", const="large", dest="size")
    parser.add_argument(
        "--shape", type=_shape, default=None, help="custom volume shape, e.g. 1,96,96,96,4"
    )
    parser.add_argument(
        "--backends",
        default=",".join(BACKENDS),
        help="comma-separated Keras backends, each timed in its own process",
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per path (best of)")
    parser.add_argument(
        "--budget",
        type=float,
        default=30.0,
        help="seconds: a path whose first call takes longer is timed once more only",
    )
    parser.add_argument("--scaling", action="store_true", help="time our report at N, 4N, 16N")
    parser.add_argument(
        "--memory", action="store_true", help="peak RSS of each path, one process per path"
    )
    parser.add_argument(
        "--paths",
        default=None,
        help="comma-separated subset of the paths to time, e.g. ours_report,keras_report,floor",
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--markdown", action="store_true", help="print the ratio table as Markdown (README)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--engine",
        action="store_true",
        help="time `voxelmetrics evaluate` end to end instead (2 cases of 128^3 x 4 .npy, 3 "
        "criteria; label maps of --label-size^3 uint8) and print the ratios (a), (b), (c)",
    )
    parser.add_argument(
        "--label-size", type=int, default=512, help="edge of the --engine label maps (512)"
    )


def _shape(text: str) -> tuple[int, ...]:
    shape = tuple(int(v) for v in text.split(","))
    if len(shape) < 2 or min(shape) < 1:
        raise argparse.ArgumentTypeError(f"expected a shape like 1,64,64,64,4; got {text!r}")
    return shape


def run(args: argparse.Namespace) -> int:
    """Run every backend's worker, print one table of ratios (or JSON); 0 on success."""
    if args.engine:
        results = engine_ratios(label_size=args.label_size, seed=args.seed)
        print(json.dumps(results, indent=2) if args.json else format_engine(results))
        return 0
    shape = args.shape or SIZES[args.size]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    unknown = set(backends) - set(BACKENDS)
    if unknown:
        raise SystemExit(f"unknown backend(s) {sorted(unknown)}; choose from {BACKENDS}")
    results = {"machine": machine(), "shape": list(shape), "backends": {}}
    for backend in backends:
        request = {
            "shape": list(shape),
            "repeats": args.repeats,
            "budget": args.budget,
            "scaling": args.scaling,
            "seed": args.seed,
            "paths": None if args.paths is None else args.paths.split(","),
        }
        outcome = _spawn(backend, ["--worker", json.dumps(request)])
        if args.memory and "error" not in outcome:
            outcome["memory_mb"] = {
                path: _spawn(backend, ["--memory-worker", json.dumps({**request, "path": path})])
                for path in outcome["times"]
            }
        results["backends"][backend] = outcome
    results["comparisons"] = compare(results["backends"])
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(format_markdown(results) if args.markdown else format_table(results))
    failed = [b for b, r in results["backends"].items() if "error" in r]
    return 1 if failed else 0


def machine() -> dict:
    """What the numbers were measured on."""
    return {
        "cpu": _cpu_name(),
        "cores": os.cpu_count(),
        "memory_gb": round(_meminfo("MemTotal") / 2**20, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _meminfo(key: str) -> int:
    """A /proc/meminfo field in KiB (0 where there is no /proc)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _spawn(backend: str, argv: list[str]) -> dict:
    """Run this module as a worker under `backend`; its last stdout line is JSON.

    The worker's progress lines (`PROGRESS` on stderr) are echoed to this process' stderr as
    they come, so a run of several minutes shows which path it is timing.
    """
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with tempfile.TemporaryFile("w+") as stdout:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voxelmetrics.bench", *argv],
            env=env,
            stdout=stdout,
            stderr=subprocess.PIPE,
            text=True,
        )
        tail: collections.deque[str] = collections.deque(maxlen=5)
        for line in proc.stderr:
            if line.startswith(PROGRESS):
                print(f"{backend}: {line[len(PROGRESS) :].strip()}", file=sys.stderr, flush=True)
            elif line.strip():
                tail.append(line.strip())
        code = proc.wait()
        stdout.seek(0)
        lines = stdout.read().strip().splitlines()
    if code != 0 or not lines:
        return {"error": f"worker exited with {code}: " + " | ".join(tail or lines[-5:])}
    return json.loads(lines[-1])


def _progress(text: str) -> None:
    """One progress line from a worker, for `_spawn` to echo."""
    print(PROGRESS + text, file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- data


def synthetic_volume(shape: tuple[int, ...], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Multi-hot truth (overlapping labels, prevalence 30%..1%) and noisy float32 scores.

    Filled in slabs of 2**20 voxels, so that generating a large volume adds little to the
    process' peak memory (the memory benchmark measures each path above it).
    """
    rng = np.random.default_rng(seed)
    c = shape[-1]
    prevalence = np.geomspace(0.3, 0.01, c).astype(np.float32)
    y_true = np.empty(shape, bool)
    y_pred = np.empty(shape, np.float32)
    truth_rows, score_rows = y_true.reshape(-1, c), y_pred.reshape(-1, c)
    for start in range(0, len(truth_rows), 1 << 20):
        stop = min(start + (1 << 20), len(truth_rows))
        truth = rng.random((stop - start, c), dtype=np.float32) < prevalence
        noise = rng.random((stop - start, c), dtype=np.float32)
        truth_rows[start:stop] = truth
        score_rows[start:stop] = np.where(truth, 0.35 + 0.65 * noise, 0.7 * noise)
    return y_true, y_pred


def scaling_shapes(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Shapes of N, 4N and 16N voxels, 16N being `shape` (the second axis divided)."""
    d = shape[1]
    return [(shape[0], max(d // f, 1), *shape[2:]) for f in (16, 4, 1)]


# ----------------------------------------------------------------------------- paths


def _backend_tools():
    """(compile, to_tensor, sync) for the active Keras backend."""
    import keras
    from keras import ops

    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit, ops.convert_to_tensor, jax.block_until_ready
    if backend == "tensorflow":
        import tensorflow as tf

        return (lambda fn: tf.function(fn, jit_compile=True)), ops.convert_to_tensor, _identity
    return _identity, ops.convert_to_tensor, _identity


def _identity(x):
    return x


def our_report(y_true, y_pred, thresholds):
    """Everything in one traced call: counts at `thresholds`, curves, AP, AUCs, best F1."""
    import voxelmetrics as vm
    from voxelmetrics.ops.thresholds import optimal_threshold

    counts, hist = vm.counts_and_histogram(y_true, y_pred, thresholds, num_bins=NUM_BINS)
    precision, recall, _ = vm.precision_recall_curve(hist)
    best_threshold, best_f1 = optimal_threshold(hist, criterion="f1")
    return {
        "counts": counts,
        "dice": vm.dice(counts),
        "precision_curve": precision,
        "recall_curve": recall,
        "average_precision": vm.average_precision(hist),
        "roc_auc": vm.roc_auc(hist),
        "pr_auc": vm.pr_auc(hist),
        "best_threshold": best_threshold,
        "best_f1": best_f1,
    }


def our_exact(y_true, y_pred, thresholds):
    """Counts plus the exact, sort-based PR curves and AP (scikit-learn's definitions)."""
    import voxelmetrics as vm

    precision, recall, scores, ap = vm.exact_precision_recall_curve(
        y_true, y_pred, with_average_precision=True
    )
    return {
        "counts": vm.confusion_counts(y_true, y_pred, thresholds),
        "precision_curve": precision,
        "recall_curve": recall,
        "thresholds": scores,
        "average_precision": ap,
    }


def our_paths(y_true, y_pred) -> dict[str, Callable]:
    """Our paths (and the floor) on the volume, compiled for the active backend."""
    import voxelmetrics as vm

    c = y_pred.shape[-1]

    jit, tensor, sync = _backend_tools()
    yt, yp = tensor(y_true), tensor(y_pred)
    thresholds = tensor(np.full((c,), THRESHOLD, np.float32))
    floor = jit(lambda p: _sum(p))
    report = jit(our_report)
    counts = jit(lambda t, p, th: vm.confusion_counts(t, p, th))
    exact = jit(our_exact)
    scatter = jit(lambda t, p: vm.score_histogram(t, p, NUM_BINS, histogram_method="scatter"))
    by_sort = jit(lambda t, p: vm.score_histogram(t, p, NUM_BINS, histogram_method="sort"))
    return {
        "floor": lambda: sync(floor(yp)),
        "ours_report": lambda: sync(report(yt, yp, thresholds)),
        "ours_counts": lambda: sync(counts(yt, yp, thresholds)),
        "ours_exact": lambda: sync(exact(yt, yp, thresholds)),
        "ours_hist_scatter": lambda: sync(scatter(yt, yp)),
        "ours_hist_sort": lambda: sync(by_sort(yt, yp)),
    }


def _sum(x):
    from keras import ops

    return ops.sum(x)


def _keras_metrics(c: int, kind: str) -> list:
    """The built-ins of one comparison: "report", "counts" (per class_id) or "auc" alone."""
    import keras

    auc = keras.metrics.AUC(num_thresholds=NUM_BINS, curve="PR", multi_label=True, num_labels=c)
    if kind == "auc":
        return [auc]
    metrics = [auc, keras.metrics.F1Score(average=None, threshold=THRESHOLD)]
    metrics = metrics if kind == "report" else []
    for k in range(c):
        metrics += [keras.metrics.Precision(class_id=k), keras.metrics.Recall(class_id=k)]
    return metrics


def _keras_path(y_true, y_pred, c: int, kind: str) -> Callable:
    """The Keras built-ins as each backend runs them fastest: stateless under jit, or eager."""
    import keras
    from keras import ops

    jit, tensor, sync = _backend_tools()
    yt = tensor(y_true.reshape(-1, c))
    yp = tensor(y_pred.reshape(-1, c))
    metrics = _keras_metrics(c, kind)
    for m in metrics:  # builds the lazily created variables (F1Score), then clears them
        m.update_state(yt[:2], yp[:2])
        m.reset_state()
    if keras.backend.backend() == "torch":

        def eager():
            for m in metrics:
                m.reset_state()
                m.update_state(yt, yp)
            return [ops.convert_to_numpy(m.result()) for m in metrics]

        return eager

    def step(states, t, p):
        results = []
        for m, state in zip(metrics, states, strict=True):
            state = m.stateless_update_state(state, t, p)
            results.append(m.stateless_result(state))
        return results

    compiled = jit(step)
    states = [[v.value for v in m.variables] for m in metrics]
    return lambda: sync(compiled(states, yt, yp))


def _torchmetrics_paths(y_true, y_pred, c: int) -> dict[str, Callable]:
    """torchmetrics on its native channels-first layout (transposed before timing)."""
    import torch
    from torchmetrics.classification import (
        MultilabelStatScores,
    )

    axes = (0, y_pred.ndim - 1, *range(1, y_pred.ndim - 1))
    preds = torch.from_numpy(np.ascontiguousarray(y_pred.transpose(axes)))
    target = torch.from_numpy(np.ascontiguousarray(y_true.transpose(axes))).long()
    stat = MultilabelStatScores(num_labels=c, average=None, threshold=THRESHOLD)

    def stat_scores():
        stat.reset()
        stat.update(preds, target)
        return stat.compute()

    paths = {"tm_stat_scores": stat_scores}
    for t in (100, 1000):
        paths[f"tm_prc_{t}"] = _torchmetrics_curve(preds, target, c, t)
    return paths


def _torchmetrics_curve(preds, target, c: int, num_thresholds: int) -> Callable:
    from torchmetrics.classification import MultilabelPrecisionRecallCurve

    metric = MultilabelPrecisionRecallCurve(num_labels=c, thresholds=num_thresholds)
    per_volume = preds[0].numel() // c
    # Its update holds ~3 int64 tensors of [voxels, C, T]; slice the first spatial axis.
    rows = preds.shape[2]
    voxels_per_row = per_volume // rows
    step = max(
        1, min(rows, TORCHMETRICS_CHUNK_BYTES // (3 * 8 * c * num_thresholds * voxels_per_row))
    )

    def curve():
        metric.reset()
        for b in range(preds.shape[0]):
            for r in range(0, rows, step):
                metric.update(preds[b : b + 1, :, r : r + step], target[b : b + 1, :, r : r + step])
        return metric.compute()

    return curve


def _sklearn_path(y_true, y_pred, c: int) -> Callable:
    from sklearn.metrics import (
        average_precision_score,
        multilabel_confusion_matrix,
        precision_recall_curve,
    )

    yt = y_true.reshape(-1, c)
    yp = y_pred.reshape(-1, c)

    def sklearn_report():
        mcm = multilabel_confusion_matrix(yt, yp >= THRESHOLD)
        curves = [precision_recall_curve(yt[:, k], yp[:, k]) for k in range(c)]
        return mcm, curves, average_precision_score(yt, yp, average=None)

    return sklearn_report


OUR_PATHS = (
    "floor",
    "ours_report",
    "ours_counts",
    "ours_exact",
    "ours_hist_scatter",
    "ours_hist_sort",
)


def path_builders(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Callable[[], Callable]]:
    """For every timed path of the active backend, a function that sets it up (converts the
    inputs, builds the metrics) and returns it: the worker holds one path's tensors at a
    time, so a peer's memory is its own and not the sum of every path's copies."""
    import keras

    c = y_pred.shape[-1]
    builders = {name: functools.partial(_our_path, y_true, y_pred, name) for name in OUR_PATHS}
    for kind in ("report", "counts", "auc"):
        builders[f"keras_{kind}"] = functools.partial(_keras_path, y_true, y_pred, c, kind)
    if keras.backend.backend() == "torch":
        for name in ("tm_stat_scores", "tm_prc_100", "tm_prc_1000"):
            builders[name] = functools.partial(_torchmetrics_path, y_true, y_pred, c, name)
    builders["sklearn"] = functools.partial(_sklearn_path, y_true, y_pred, c)
    return builders


def _our_path(y_true, y_pred, name: str) -> Callable:
    return our_paths(y_true, y_pred)[name]


def _torchmetrics_path(y_true, y_pred, c: int, name: str) -> Callable:
    return _torchmetrics_paths(y_true, y_pred, c)[name]


def all_paths(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Callable]:
    """Every timed path for the active backend, set up, keyed by name (see PATH_NOTES)."""
    return {name: build() for name, build in path_builders(y_true, y_pred).items()}


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
            _progress(f"timing {name}")
            times[name] = _timed_or_error(build, request["repeats"], request["budget"])
            gc.collect()  # the path's tensors go before the next path is set up
    out = {"backend": keras.backend.backend(), "times": times}
    if request["scaling"]:
        shapes = scaling_shapes(shape)
        seconds = []
        for s in shapes:
            _progress(f"scaling: our report on {s}")
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


# ----------------------------------------------------------------------------- report


def compare(backends: dict) -> list[dict]:
    """One row per comparison: the ratio peer/ours per backend, and whether the target is met."""
    rows = []
    for name, peer, ours, target in COMPARISONS:
        row = {"comparison": name, "peer": peer, "ours": ours, "target": target, "ratios": {}}
        for backend, result in backends.items():
            times = result.get("times", {})
            if "seconds" in times.get(peer, {}) and "seconds" in times.get(ours, {}):
                row["ratios"][backend] = times[peer]["seconds"] / times[ours]["seconds"]
        rows.append(row)
    floors = [
        {
            "comparison": f"{label} / floor (lower is better)",
            "ours": path,
            "target": target,
            "ratios": {},
        }
        for label, path, target in (
            ("our report", "ours_report", 10.0),
            ("our counts", "ours_counts", None),
        )
    ]
    scaling = {"comparison": "scaling exponent of our report (N, 4N, 16N)", "ratios": {}}
    for backend, result in backends.items():
        times = result.get("times", {})
        for floor in floors:
            if "seconds" in times.get("floor", {}) and "seconds" in times.get(floor["ours"], {}):
                floor["ratios"][backend] = (
                    times[floor["ours"]]["seconds"] / times["floor"]["seconds"]
                )
        if "scaling" in result:
            scaling["ratios"][backend] = result["scaling"]["exponent"]
    return [*rows, *floors, scaling]


def _verdict(row: dict, value: float) -> str:
    target = row.get("target")
    if target is None:
        return ""
    lower = row["comparison"].endswith("(lower is better)")
    met = value <= target if lower else value >= target
    return " ok" if met else " MISS"


def format_table(results: dict) -> str:
    """The ratio table, then the raw times (and peak memory) per path and backend."""
    backends = list(results["backends"])
    m = results["machine"]
    shape = tuple(results["shape"])
    judged = _judged(shape)
    lines = [
        f"voxelmetrics bench: volume {shape}, {_volume_text(shape)}; "
        f"{m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB",
        "",
    ]
    if not judged:
        lines += [_NOT_JUDGED, ""]
    rows = [["comparison", "target", *backends]]
    for row in results["comparisons"]:
        target = row.get("target")
        target_text = "" if target is None else _target_text(row, target)
        rows.append([row["comparison"], target_text, *_ratio_cells(row, backends, "-", judged)])
    lines += [*_aligned(rows), ""]
    paths = dict.fromkeys(p for r in results["backends"].values() for p in r.get("times", {}))
    rows = [["path (best time, ms)", *backends, "what"]]
    for path in paths:
        rows.append([path, *_path_cells(results, "times", path, _time_text, "-"), PATH_NOTES[path]])
    lines += _aligned(rows)
    if any("memory_mb" in r for r in results["backends"].values()):
        rows = [["peak RSS above inputs, MiB", *backends]]
        for path in paths:
            rows.append([path, *_path_cells(results, "memory_mb", path, _memory_text, "-")])
        lines += ["", *_aligned(rows)]
    if any(p.startswith("tm_prc") for p in paths):
        c = shape[-1]
        need = {t: int(np.prod(shape)) * t * 24 / 2**30 for t in (100, 1000)}
        lines.append(
            f"* one update on the whole volume holds int64 [voxels, {c}, T] temporaries "
            f"(~{need[100]:.0f} GiB at T=100, ~{need[1000]:.0f} GiB at T=1000): fed in "
            f"chunks of <= {TORCHMETRICS_CHUNK_BYTES / 2**30:.0f} GiB, as with bounded memory"
        )
    for b, r in results["backends"].items():
        if "error" in r:
            lines.append(f"{b}: {r['error']}")
        for path, t in r.get("times", {}).items():
            if "error" in t:
                lines.append(f"{b} {path}: {t['error']}")
    return "\n".join(lines)


def format_markdown(results: dict) -> str:
    """The ratio table and the raw times as Markdown, for the README."""
    backends = list(results["backends"])
    m = results["machine"]
    shape = tuple(results["shape"])
    judged = _judged(shape)
    lines = [
        f"Volume {shape} ({_volume_text(shape)}), {m['cpu']}, "
        f"{m['cores']} cores, {m['memory_gb']} GB RAM, CPU only.",
        "",
        *([] if judged else [_NOT_JUDGED, ""]),
        "| comparison | target | " + " | ".join(backends) + " |",
        "|---|---|" + "---|" * len(backends),
    ]
    for row in results["comparisons"]:
        target = row.get("target")
        cells = _ratio_cells(row, backends, "–", judged)
        target_text = "" if target is None else _target_text(row, target)
        lines.append(f"| {row['comparison']} | {target_text} | " + " | ".join(cells) + " |")
    lines += ["", "| path | " + " | ".join(f"{b} (ms)" for b in backends) + " | what |"]
    lines.append("|---|" + "---|" * len(backends) + "---|")
    paths = dict.fromkeys(p for r in results["backends"].values() for p in r.get("times", {}))
    for path in paths:
        cells = _path_cells(results, "times", path, _time_text, "–")
        lines.append(f"| {path} | " + " | ".join(cells) + f" | {PATH_NOTES[path]} |")
    if any("memory_mb" in r for r in results["backends"].values()):
        lines += ["", "| peak RSS above the inputs (MiB) | " + " | ".join(backends) + " |"]
        lines.append("|---|" + "---|" * len(backends))
        for path in paths:
            cells = _path_cells(results, "memory_mb", path, _memory_text, "–")
            lines.append(f"| {path} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ratio_cells(row: dict, backends: list[str], missing: str, judged: bool) -> list[str]:
    """One comparison's cells: the ratio (with its verdict if `judged`), or the exponent."""
    cells = []
    for b in backends:
        value = row["ratios"].get(b)
        if value is None:
            cells.append(missing)
        elif "exponent" in row["comparison"]:
            cells.append(f"{value:.2f}")
        else:
            cells.append(_ratio_text(value) + (_verdict(row, value) if judged else ""))
    return cells


_NOT_JUDGED = (
    f"(targets are judged on volumes of at least {VERDICT_MIN_SCORES:,} scores, the default "
    "size; on this one fixed per-call costs dominate, so no verdicts)"
)


def _judged(shape: tuple[int, ...]) -> bool:
    """Whether the volume is large enough for the targets to mean something."""
    return int(np.prod(shape)) >= VERDICT_MIN_SCORES


def _volume_text(shape: tuple[int, ...]) -> str:
    """`"16,384 scores"` below a million, `"16.8M scores"` above."""
    n = int(np.prod(shape))
    return f"{n:,} scores" if n < 10**6 else f"{n / 1e6:.1f}M scores"


def _path_cells(results: dict, kind: str, path: str, text: Callable, missing: str) -> list[str]:
    """One path's `kind` ("times" or "memory_mb") per backend, formatted by `text`."""
    return [text(r.get(kind, {}).get(path), missing) for r in results["backends"].values()]


def _time_text(timing: dict | None, missing: str) -> str:
    if timing is None:
        return missing
    return "error" if "error" in timing else f"{timing['seconds'] * 1e3:.1f}"


def _ratio_text(value: float) -> str:
    return f"{value:.1f}x" if value >= 0.95 else f"{value:.2g}x"


def _memory_text(memory: dict | None, missing: str) -> str:
    if memory is None:
        return missing
    return "error" if "error" in memory else f"{memory['extra_mb']:.0f}"


def _target_text(row: dict, target: float) -> str:
    return (
        f"<= {target:g}x" if row["comparison"].endswith("(lower is better)") else f">= {target:g}x"
    )


def _aligned(rows: list[list[str]]) -> list[str]:
    """Rows as text lines, each column as wide as its widest cell plus two spaces."""
    widths = [max(len(str(r[i])) for r in rows) + 2 for i in range(len(rows[0]))]
    return ["".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in rows]


# ----------------------------------------------------------------------------- engine

ENGINE_CASES = 2
ENGINE_EDGE = 128
ENGINE_CRITERIA = ("f1", "youden", "recall_at_precision:0.8")
LABEL_CLASSES = 4


def _best(fn: Callable, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def _once(fn: Callable) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def _engine_files(folder: str, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    arrays = []
    for i in range(ENGINE_CASES):
        y_true, y_pred = synthetic_volume((ENGINE_EDGE,) * 3 + (4,), seed + i)
        for sub, array in (("pred", y_pred), ("true", y_true.astype(np.uint8))):
            os.makedirs(os.path.join(folder, sub), exist_ok=True)
            np.save(os.path.join(folder, sub, f"case{i}.npy"), array)
        arrays.append((y_true.astype(np.uint8), y_pred))
    return arrays


def _cli_seconds(argv: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, *argv], check=True, capture_output=True)
    return time.perf_counter() - start


def engine_ratios(label_size: int = 512, seed: int = 0) -> dict:
    """The evaluation job's speed as ratios measured in one process (see `format_engine`).

    Scores: 2 cases of 128^3 x 4 float32 `.npy` + uint8 multi-hot truth, 3 criteria.
    (a) the evaluation phase (`evaluate` on the files, warm, best of 3) over
    `counts_and_histogram` on the same arrays in memory (jitted, warm, best of 3); (b)
    building the report (`summarize`, first call in the process, as a run pays it) over the
    evaluation phase; (c) a whole
    `voxelmetrics evaluate` run over python start + imports + the evaluation phase.
    Label maps: uint8 `label_size`^3, `evaluate` (warm) over a numpy bincount of
    `true * C + pred` on the same arrays.
    """
    import keras

    import voxelmetrics as vm
    from voxelmetrics.evaluate.engine import Options, evaluate
    from voxelmetrics.evaluate.report import summarize

    out = {"backend": keras.backend.backend(), "machine": machine()}
    with tempfile.TemporaryDirectory() as folder:
        arrays = _engine_files(folder, seed)
        pred, true = os.path.join(folder, "pred"), os.path.join(folder, "true")
        kernel = functools.partial(vm.counts_and_histogram, num_bins=NUM_BINS)
        threshold = np.full(4, THRESHOLD, np.float32)

        def in_memory():
            for y_true, y_pred in arrays:
                np.asarray(kernel(y_true, y_pred, threshold)[0])

        _progress("engine: in-memory kernel")
        in_memory()
        out["kernel_s"] = _best(in_memory)
        _progress("engine: evaluation phase")
        out["evaluate_cold_s"], _ = _once(
            lambda: evaluate(y_true=true, y_pred=pred, options=Options())
        )
        evaluation = evaluate(y_true=true, y_pred=pred, options=Options())
        out["evaluate_s"] = _best(lambda: evaluate(y_true=true, y_pred=pred, options=Options()))
        _progress("engine: report")
        out["report_s"], _ = _once(lambda: summarize(evaluation, criteria=ENGINE_CRITERIA))
        out["report_warm_s"], _ = _once(lambda: summarize(evaluation, criteria=ENGINE_CRITERIA))
        _progress("engine: whole command")
        out["import_s"] = _cli_seconds(["-c", "import voxelmetrics, keras, jax"])
        criteria = ",".join(ENGINE_CRITERIA)
        argv = ["-m", "voxelmetrics", "evaluate", pred, true, "--quiet", "--criterion", criteria]
        out["cli_s"] = _cli_seconds([*argv, "--out", os.path.join(folder, "out")])
    _progress(f"engine: label maps {label_size}^3")
    rng = np.random.default_rng(seed)
    shape = (label_size,) * 3
    y_true = rng.integers(0, LABEL_CLASSES, shape, dtype=np.uint8)
    y_pred = np.where(rng.random(shape, dtype=np.float32) < 0.9, y_true, 0).astype(np.uint8)
    c = LABEL_CLASSES

    def numpy_bincount():
        np.bincount((y_true.astype(np.int64) * c + y_pred).ravel(), minlength=c * c)

    out["label_size"] = label_size
    out["bincount_s"] = _best(numpy_bincount, 2)
    options = Options(num_classes=c)
    out["labels_cold_s"], _ = _once(lambda: evaluate(y_true=y_true, y_pred=y_pred, options=options))
    out["labels_s"] = _best(lambda: evaluate(y_true=y_true, y_pred=y_pred, options=options), 2)
    out["ratios"] = {
        "a_evaluate_over_kernel": out["evaluate_s"] / out["kernel_s"],
        "b_report_over_evaluate": out["report_s"] / out["evaluate_s"],
        "c_cli_over_import_plus_evaluate": out["cli_s"] / (out["import_s"] + out["evaluate_s"]),
        "labels_over_bincount": out["labels_s"] / out["bincount_s"],
    }
    return out


ENGINE_TARGETS = {
    "a_evaluate_over_kernel": ("(a) evaluation phase / in-memory counts_and_histogram", 3.0),
    "b_report_over_evaluate": ("(b) report (summarize) / evaluation phase", 0.1),
    "c_cli_over_import_plus_evaluate": ("(c) whole CLI run / (python+imports+evaluation)", 2.0),
    "labels_over_bincount": ("label maps: evaluate / numpy bincount", 3.0),
}


def format_engine(results: dict) -> str:
    """The engine's seconds and ratios, each with its target."""
    r = results
    lines = [
        f"backend {r['backend']}; {ENGINE_CASES} cases of {ENGINE_EDGE}^3 x 4 float32 .npy, "
        f"3 criteria; label maps {r['label_size']}^3 uint8",
        f"in-memory kernel {r['kernel_s']:.3f} s; evaluate {r['evaluate_s']:.3f} s (first call "
        f"{r['evaluate_cold_s']:.3f} s); report {r['report_s']:.3f} s (again "
        f"{r['report_warm_s']:.3f} s); imports {r['import_s']:.2f} s; whole CLI {r['cli_s']:.2f} s",
        f"label maps: evaluate {r['labels_s']:.3f} s (first call {r['labels_cold_s']:.3f} s); "
        f"numpy bincount {r['bincount_s']:.3f} s",
    ]
    for key, (text, target) in ENGINE_TARGETS.items():
        value = r["ratios"][key]
        lines.append(f"{text:<56} {value:7.2f}  (target < {target:g})")
    return "\n".join(lines)


def _main(argv: list[str]) -> int:
    if argv[:1] == ["--worker"]:
        print(json.dumps(worker(json.loads(argv[1]))))
        return 0
    if argv[:1] == ["--memory-worker"]:
        print(json.dumps(memory_worker(json.loads(argv[1]))))
        return 0
    parser = argparse.ArgumentParser(prog="python -m voxelmetrics.bench", description=__doc__)
    configure_parser(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
