"""The one evaluation case every distributed test runs: tiny volumes, a tiny model, metrics.

Features and weights are dyadic (multiples of 1/8 and 1/16), so every prediction is computed
exactly whatever the order of the sums, and a device or replica sees the very scores a
single device sees: any difference in the metrics is then the metrics' own.
"""

import contextlib

import numpy as np

NUM_VOLUMES = 8
SHAPE = (4, 4, 4)
FEATURES = 3
CLASSES = 2
NUM_BINS = 16


def volumes(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(x, y): float32 features `[N, D, H, W, F]` and multi-hot labels `[N, D, H, W, C]`."""
    rng = np.random.default_rng(seed)
    x = rng.integers(-16, 17, (NUM_VOLUMES, *SHAPE, FEATURES)).astype(np.float32) / 8
    y = (rng.random((NUM_VOLUMES, *SHAPE, CLASSES)) < 0.4).astype(np.float32)
    return x, y


def weights() -> list[np.ndarray]:
    """Dense kernel `[F, C]` and bias `[C]`, multiples of 1/16."""
    kernel = np.array([[0.5, -0.25], [-0.75, 0.5], [0.25, 0.625]], np.float32)
    bias = np.array([0.0625, -0.125], np.float32)
    return [kernel, bias]


def build_model():
    """(model, metrics): a per-voxel sigmoid classifier (a 1x1x1 convolution) compiled
    with the metrics, which are built from the first batch (no `num_classes`)."""
    import keras

    from voxelmetrics import metrics

    inputs = keras.Input((*SHAPE, FEATURES))
    outputs = keras.layers.Dense(CLASSES, activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.set_weights(weights())
    scores = [
        metrics.ConfusionCounts(),
        metrics.Dice(average=None),
        metrics.AveragePrecision(num_bins=NUM_BINS, average=None),
        metrics.SamplewiseDice(average=None),
    ]
    model.compile(
        # learning_rate=0: fit runs the full train step (gradients, all-reduce, metric
        # updates) but keeps the weights, so every run scores the same predictions.
        optimizer=keras.optimizers.SGD(learning_rate=0.0),
        loss="binary_crossentropy",
        metrics=scores,
    )
    return model, scores


def fit_and_evaluate(share=slice(None), *, scope=None, merge=None, fit: bool = True) -> dict:
    """fit for one epoch (unless `fit=False`), then evaluate, on volumes `share`; the exact
    states after each, the logs, and the predictions.

    Args:
        share: which volumes this process sees (default all).
        scope: a context manager to build the model in (e.g. `strategy.scope()`).
        merge: called with the model after fit and after evaluate (e.g.
            `all_reduce_metrics`), before the states are read.
        fit: whether to fit first (evaluate only saves a few seconds of compiling).
    """
    x, y = volumes()
    with scope if scope is not None else contextlib.nullcontext():
        model, metrics = build_model()
    merge = merge or (lambda model: None)
    result = {"returned_logs": {}}  # what fit / evaluate return, before `merge`
    if fit:
        history = model.fit(x[share], y[share], batch_size=4, epochs=1, shuffle=False, verbose=0)
        result["returned_logs"]["fit"] = {k: plain(v[-1]) for k, v in history.history.items()}
        merge(model)
        result["fit_states"] = exact_states(metrics)
    returned = model.evaluate(x[share], y[share], batch_size=4, verbose=0, return_dict=True)
    result["returned_logs"]["evaluate"] = {k: plain(v) for k, v in returned.items()}
    merge(model)
    result["eval_states"] = exact_states(metrics)
    result["eval_logs"] = {k: plain(v) for k, v in model.get_metrics_result().items()}
    if fit:
        result["predictions"] = plain(model.predict(x[share], batch_size=4, verbose=0))
    return result


def exact_states(metrics) -> dict[str, list]:
    """Every metric variable as exact numbers: int32 limb totals as int64, floats as float64.

    Limbs are compared through their totals: a sum of replicas' limbs leaves the low limb
    un-normalised (`hi * 2**24 + lo` with `lo >= 2**24`), which is the same number.
    """
    from keras import ops

    from voxelmetrics.ops.accumulate import exact_total

    states = {}
    for metric in metrics:
        for variable in metric.variables:
            key = f"{metric.name}/{variable.name}"
            if "int" in str(variable.dtype):
                states[key] = exact_total(variable).tolist()
            else:
                states[key] = np.asarray(ops.convert_to_numpy(variable), np.float64).tolist()
    return states


def plain(value):
    """A log value or array as JSON-ready Python numbers (float32 kept as its exact float)."""
    return np.asarray(value).tolist()


def scores(seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """(y_true, y_pred) for offline evaluation: multi-hot `[N, D, H, W, C]` and float32
    scores on a grid of 1/32 (many exactly on the bin edges of `NUM_BINS` bins)."""
    rng = np.random.default_rng(seed)
    y_true = (rng.random((NUM_VOLUMES, *SHAPE, CLASSES)) < 0.3).astype(np.int8)
    y_pred = rng.integers(0, 33, (NUM_VOLUMES, *SHAPE, CLASSES)).astype(np.float32) / 32
    return y_true, y_pred


def offline_totals(y_true, y_pred):
    """The offline counts of one block: (`[C, 4]` counts, `[C, B, 2]` histogram), int32."""
    from voxelmetrics import confusion_counts, score_histogram

    return confusion_counts(y_true, y_pred, 0.5), score_histogram(y_true, y_pred, NUM_BINS)
