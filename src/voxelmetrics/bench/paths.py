"""Every timed path of `voxelmetrics bench`: ours, the Keras built-ins, torchmetrics,
scikit-learn and the floor, each set up for the active Keras backend.

The peers' packages (torchmetrics, scikit-learn) are the `bench` extra: a path of one
missing raises `MissingExtra` naming it (see `bench.extra`).
"""

import functools
from collections.abc import Callable

import numpy as np

import voxelmetrics.defaults as defaults
from voxelmetrics.bench.extra import require

NUM_BINS = defaults.NUM_BINS
THRESHOLD = defaults.THRESHOLD
# torchmetrics' binned multilabel PR curve materialises int64 [N, C, T] tensors; chunk its
# updates so that those stay below this many bytes, as a user with bounded memory would.
TORCHMETRICS_CHUNK_BYTES = 1 << 30

PATH_NOTES = {
    "floor": "one sum over y_pred",
    "ours_report": f"counts@{THRESHOLD} + {NUM_BINS}-bin histogram + PR curves + AP + ROC/PR-AUC "
    "+ best-F1",
    "ours_counts": "fused tp/fp/fn/tn per class",
    "ours_exact": "counts + exact (sort-based) PR curves + AP",
    "ours_hist_scatter": "score_histogram, scatter (bincount) path",
    "ours_hist_sort": "score_histogram, sorted-score path",
    "keras_report": f"AUC({NUM_BINS}, PR, multi_label) + F1Score(None) + Precision/Recall("
    "class_id=c)",
    "keras_counts": "Precision/Recall(class_id=c) for every c",
    "keras_auc": f"AUC(num_thresholds={NUM_BINS}, curve='PR', multi_label=True) alone",
    "tm_stat_scores": "torchmetrics MultilabelStatScores(average=None)",
    "tm_prc_100": "torchmetrics MultilabelPrecisionRecallCurve(thresholds=100), chunked*",
    "tm_prc_1000": "torchmetrics MultilabelPrecisionRecallCurve(thresholds=1000), chunked*",
    "sklearn": "multilabel_confusion_matrix + precision_recall_curve per class + AP",
}


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

    MultilabelStatScores = require("torchmetrics.classification").MultilabelStatScores

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
    curves = require("torchmetrics.classification").MultilabelPrecisionRecallCurve

    metric = curves(num_labels=c, thresholds=num_thresholds)
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
    sk = require("sklearn.metrics")

    yt = y_true.reshape(-1, c)
    yp = y_pred.reshape(-1, c)

    def sklearn_report():
        mcm = sk.multilabel_confusion_matrix(yt, yp >= THRESHOLD)
        curves = [sk.precision_recall_curve(yt[:, k], yp[:, k]) for k in range(c)]
        return mcm, curves, sk.average_precision_score(yt, yp, average=None)

    return sklearn_report


# The peers' paths that import an extra's package (see `bench.extra`), and which run only
# under the torch backend (torchmetrics takes torch tensors).
PEER_MODULES = {
    "sklearn": "sklearn",
    "tm_stat_scores": "torchmetrics",
    "tm_prc_100": "torchmetrics",
    "tm_prc_1000": "torchmetrics",
}
TORCH_ONLY = ("tm_stat_scores", "tm_prc_100", "tm_prc_1000")
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
        for name in TORCH_ONLY:
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


def peer_modules(backends: list[str], wanted: list[str] | None = None) -> list[str]:
    """The extra's modules the `wanted` paths (None: all) import under `backends`.

    Example:
        >>> peer_modules(["jax"]), peer_modules(["torch"], ["ours_report", "tm_prc_100"])
        (['sklearn'], ['torchmetrics'])
    """
    chosen = [p for p in PEER_MODULES if wanted is None or p in wanted]
    chosen = [p for p in chosen if p not in TORCH_ONLY or "torch" in backends]
    return sorted({PEER_MODULES[p] for p in chosen})
