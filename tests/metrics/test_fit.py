"""A tiny 3D U-Net trained under the active backend: logs equal numpy, saving round-trips."""

import csv

import keras
import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from tests.reference import assert_close, reference_counts, reference_score
from voxelmetrics import losses, metrics

NAMES = ["organ", "lesion", "bright"]
BINS = 32


def synthetic_volumes(n=8, size=16, seed=0):
    """Volumes with overlapping labels: a lesion inside an organ, and bright voxels."""
    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1)
    x = np.empty((n, size, size, size, 1), np.float32)
    y = np.zeros((n, size, size, size, 3), np.float32)
    for i in range(n):
        centre = rng.uniform(5, size - 5, 3)
        organ = np.linalg.norm(grid - centre, axis=-1) < rng.uniform(3.5, 5)
        lesion = organ & (np.linalg.norm(grid - centre - 1.5, axis=-1) < 2.0)
        x[i, ..., 0] = 0.5 * organ + 0.5 * lesion + 0.3 * rng.normal(size=organ.shape)
        y[i, ..., 0], y[i, ..., 1] = organ, lesion
        y[i, ..., 2] = x[i, ..., 0] > 0.6
    return x, y


def unet(num_classes=3, size=16):
    """A two-level 3D U-Net with about 2,700 parameters."""
    layers = keras.layers
    inputs = keras.Input((size, size, size, 1))
    skip = layers.Conv3D(4, 3, padding="same", activation="relu")(inputs)
    skip = layers.Conv3D(4, 3, padding="same", activation="relu")(skip)
    deep = layers.Conv3D(8, 3, padding="same", activation="relu")(layers.MaxPooling3D(2)(skip))
    merged = layers.Concatenate()([layers.UpSampling3D(2)(deep), skip])
    features = layers.Conv3D(4, 3, padding="same", activation="relu")(merged)
    outputs = layers.Conv3D(num_classes, 1, activation="sigmoid")(features)
    return keras.Model(inputs, outputs)


def compiled_unet():
    keras.utils.set_random_seed(1)
    model = unet()
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=losses.TverskyLoss(alpha=0.3, beta=0.7),
        metrics=[
            metrics.SegmentationReport(class_names=NAMES, average=["micro", "macro"]),
            metrics.AveragePrecision(num_bins=BINS, average=None, class_names=NAMES),
        ],
        weighted_metrics=[metrics.Dice(average=None, class_names=NAMES, name="w_dice")],
    )
    return model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    x, y = synthetic_volumes()
    model = compiled_unet()
    log = tmp_path_factory.mktemp("fit") / "log.csv"
    history = model.fit(
        x,
        y,
        epochs=2,
        batch_size=4,
        validation_data=(x[:4], y[:4]),
        callbacks=[keras.callbacks.CSVLogger(str(log))],
        verbose=0,
    )
    return model, history, log, x, y


def expected_logs(model, x, y, sample_weight):
    """numpy recomputation of every logged metric from `model.predict` outputs."""
    scores = model.predict(x, batch_size=4, verbose=0)
    counts = reference_counts(y.astype(bool), scores >= np.float32(0.5))
    expected = {}
    for score in ("recall", "precision", "dice", "iou"):
        for name, value in zip(NAMES, reference_score(counts, score), strict=True):
            expected[f"{score}/{name}"] = value
        for average in ("micro", "macro"):
            expected[f"{score}/{average}"] = reference_score(counts, score, average)
    edges = np.arange(BINS, dtype=np.float32) / np.float32(BINS)
    q = edges[np.searchsorted(edges, scores, side="right") - 1].reshape(-1, 3)
    truth = y.reshape(-1, 3)
    for c, name in enumerate(NAMES):
        expected[f"average_precision/{name}"] = average_precision_score(truth[:, c], q[:, c])
    w = np.broadcast_to(sample_weight[:, None, None, None], y.shape[:-1])
    weighted = reference_counts(y.astype(bool), scores >= np.float32(0.5), w)
    for name, value in zip(NAMES, reference_score(weighted, "dice"), strict=True):
        expected[f"w_dice/{name}"] = value
    return expected


def test_fit_logs_every_entry_as_a_separate_scalar(trained):
    _, history, log, _, _ = trained
    keys = set(history.history)
    for prefix in ("", "val_"):
        for name in NAMES:
            assert {f"{prefix}dice/{name}", f"{prefix}average_precision/{name}"} <= keys
        assert {f"{prefix}recall/macro", f"{prefix}iou/micro", f"{prefix}invalid"} <= keys
    assert all(len(v) == 2 for v in history.history.values())
    assert np.isfinite(history.history["dice/organ"]).all()
    with open(log) as f:
        header = next(csv.reader(f))
    assert {"dice/organ", "val_recall/lesion", "average_precision/bright"} <= set(header)


def test_evaluate_logs_equal_numpy_on_predict_outputs(trained):
    model, _, _, x, y = trained
    sample_weight = np.float32([0.5, 1, 2, 0, 1, 1, 3, 1])
    logs = model.evaluate(
        x, y, batch_size=4, sample_weight=sample_weight, verbose=0, return_dict=True
    )
    expected = expected_logs(model, x, y, sample_weight)
    for key, value in expected.items():
        assert_close(logs[key], value, rtol=1e-5, atol=1e-6, err_msg=key)
    assert logs["invalid"] == 0


def test_saved_model_reloads_with_safe_mode_and_gives_the_same_logs(trained, tmp_path):
    model, _, _, x, y = trained
    path = tmp_path / "unet.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert isinstance(loaded.loss, losses.TverskyLoss) and loaded.loss.beta == 0.7
    before = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    after = loaded.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    assert set(after) == set(before)
    for key in before:
        assert_close(after[key], before[key], rtol=1e-6)


@pytest.mark.parametrize("mode", ["multiclass", "sparse"])
def test_exclusive_classes_on_model_predict_outputs(mode):
    """Softmax output, one-hot or integer labels (255 ignored), volume weights: the logged
    values equal numpy on `model.predict` outputs (argmax decisions, one-vs-rest curves)."""
    x, y = (v[:, ::2, ::2, ::2] for v in synthetic_volumes(n=4))
    ids = (y[..., 0] + y[..., 1]).astype(np.int32)  # 0 background, 1 organ, 2 lesion
    ids[0, 0] = 255
    truth = ids if mode == "sparse" else np.eye(3, dtype=np.float32)[np.minimum(ids, 2)]
    keep = ids != 255 if mode == "sparse" else np.ones(ids.shape, bool)
    keras.utils.set_random_seed(2)
    inputs = keras.Input((8, 8, 8, 1))
    outputs = keras.layers.Conv3D(3, 3, padding="same", activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    options = {"mode": mode, "ignore_index": 255} if mode == "sparse" else {"mode": mode}
    model.compile(
        loss=lambda t, p: keras.ops.mean(p),
        metrics=[
            metrics.SegmentationReport(scores=["dice", "iou"], **options),
            metrics.ROCAUC(num_bins=BINS, average=None, class_names=NAMES, **options),
        ],
        weighted_metrics=[metrics.SamplewiseDice(average=None, name="sw_dice", **options)],
    )
    w = np.float32([1.0, 0.5, 0.0, 2.0])
    logs = model.evaluate(x, truth, batch_size=2, sample_weight=w, verbose=0, return_dict=True)
    scores = model.predict(x, batch_size=2, verbose=0)
    labels = np.eye(3, dtype=bool)[np.minimum(ids, 2)] & keep[..., None]
    predicted = np.eye(3, dtype=bool)[scores.argmax(-1)]
    counts = reference_counts(labels, predicted, keep.astype(np.int64))
    for score in ("dice", "iou"):
        for c in range(3):
            expected = reference_score(counts, score)[c]
            assert_close(logs[f"{score}/class_{c}"], expected, err_msg=f"{score}/{c}")
        assert_close(logs[f"{score}/macro"], reference_score(counts, score, "macro"))
    edges = np.arange(BINS, dtype=np.float32) / np.float32(BINS)
    q = edges[np.searchsorted(edges, scores, side="right") - 1]
    for c, name in enumerate(NAMES):
        expected = roc_auc_score(labels[..., c][keep], q[..., c][keep])
        assert_close(logs[f"roc_auc/{name}"], expected, rtol=1e-5, err_msg=name)
    per_volume = []
    for v in range(4):
        tp, fp, fn, _ = reference_counts(labels[v], predicted[v], keep[v].astype(np.int64)).T
        with np.errstate(invalid="ignore"):
            per_volume.append(2 * tp / (2 * tp + fp + fn))
    per_volume = np.array(per_volume)
    weights = np.where(np.isnan(per_volume), 0, w[:, None])
    expected = (weights * np.nan_to_num(per_volume)).sum(0) / weights.sum(0)
    assert_close(logs["sw_dice"], expected, rtol=1e-5)  # average=None: a [C] entry


PARTIAL_BATCH_METRICS = {
    "recall": lambda: metrics.Recall(average=None),
    "dice": lambda: metrics.Dice(average=None),
    "confusion_counts": lambda: metrics.ConfusionCounts(),
    "report": lambda: metrics.SegmentationReport(scores=["dice"]),
    "samplewise_dice": lambda: metrics.SamplewiseDice(average=None),
    "hd": lambda: metrics.HausdorffDistance(percentile=None, spatial_dims=3),
    "assd": lambda: metrics.AverageSurfaceDistance(),
    "surface_dice": lambda: metrics.SurfaceDice(1.0),
    "average_precision": lambda: metrics.AveragePrecision(num_bins=BINS, average=None),
}


def test_partial_last_batch_fit_and_evaluate_equal_one_eager_update():
    """5 volumes, batch_size=4: the last batch has one volume, so under `tf.function` the
    batch dimension is unknown until run time (it crashed every counting kernel). The logs of
    `evaluate` equal one eager update over `model.predict`, and ConfusionCounts equals numpy."""
    x, y = (v[:5, ::2, ::2, ::2, :2] for v in synthetic_volumes(n=5))
    keras.utils.set_random_seed(3)
    inputs = keras.Input((8, 8, 8, 1))
    outputs = keras.layers.Conv3D(2, 3, padding="same", activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(
        "sgd",
        "binary_crossentropy",
        metrics=[make() for make in PARTIAL_BATCH_METRICS.values()],
    )
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    logs = model.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    scores = model.predict(x, batch_size=4, verbose=0)
    for key, make in PARTIAL_BATCH_METRICS.items():
        metric = make()
        metric.update_state(y, scores)
        for name, value in (
            metric.result().items() if key == "report" else [(metric.name, metric.result())]
        ):
            assert_close(logs[name], keras.ops.convert_to_numpy(value), rtol=1e-5, err_msg=name)
    expected = reference_counts(y.astype(bool), scores >= np.float32(0.5))
    np.testing.assert_array_equal(logs["confusion_counts"], expected)


def test_evaluate_with_an_invalid_label_logs_the_same_on_every_backend():
    """Issue 12 item 7: `evaluate` raised under torch (eager) where JAX and TensorFlow left
    the voxels out silently. Now every backend tallies them: `invalid` in the report's logs
    and in `invalid_count()`, the scores over the valid voxels equal numpy."""
    x, y = (v[:4, ::2, ::2, ::2] for v in synthetic_volumes(n=4))
    ids = (y[..., 0] + y[..., 1]).astype(np.int32)
    ids[1, 2, 3, :5] = 9  # five voxels with a label that is no class
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 8, 1))
    outputs = keras.layers.Conv3D(3, 1, activation="softmax")(inputs)
    model = keras.Model(inputs, outputs)
    report = metrics.SegmentationReport(scores=["dice"], mode="sparse")
    model.compile(loss=lambda t, p: keras.ops.mean(p), metrics=[report])
    logs = model.evaluate(x, ids, batch_size=2, verbose=0, return_dict=True)
    assert logs["invalid"] == 5 * 3
    np.testing.assert_array_equal(report.invalid_count(), [5, 5, 5])
    scores = model.predict(x, batch_size=2, verbose=0)
    keep = ids != 9
    labels = np.eye(3, dtype=bool)[np.where(keep, ids, 0)] & keep[..., None]
    predicted = np.eye(3, dtype=bool)[scores.argmax(-1)] & keep[..., None]
    counts = reference_counts(labels, predicted)
    for c in range(3):
        assert_close(logs[f"dice/class_{c}"], reference_score(counts, "dice")[c], rtol=1e-5)
