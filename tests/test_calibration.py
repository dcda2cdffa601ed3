"""`ApplyThresholds` and `ThresholdCalibration`: calibrate, save, reload in safe mode, predict."""

import keras
import numpy as np
import pytest

from tests.conftest import to_numpy
from voxelmetrics.calibration import ApplyThresholds, ThresholdCalibration, find_threshold_layer
from voxelmetrics.ops.criterion import Criterion
from voxelmetrics.ops.histogram import score_histogram
from voxelmetrics.ops.thresholds import optimal_threshold


def _volumes(seed, n=6, c=3):
    """Tiny multi-label volumes `[n, 4, 4, 4, c]`, labels overlapping, one of them rare."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4, 4, 4, 2)).astype("float32")
    logits = np.stack([x[..., 0], x[..., 1], x[..., 0] + x[..., 1] - 1.5], -1)
    y = (logits + 0.7 * rng.normal(size=logits.shape) > 0).astype("float32")
    return x, y


def _backbone(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 4, 2))
    outputs = keras.layers.Conv3D(3, 1, activation="sigmoid")(inputs)
    return keras.Model(inputs, outputs)


def test_layer_applies_the_threshold_rule_per_class():
    layer = ApplyThresholds([0.25, 0.5, 1.0])
    scores = np.float32([[0.25, 0.49, 1.0], [0.2, 0.5, 0.99]])
    np.testing.assert_array_equal(to_numpy(layer(scores)), scores >= np.float32([0.25, 0.5, 1.0]))
    assert not layer.trainable_weights and len(layer.non_trainable_weights) == 1
    # Channels-first logits: the sigmoid is applied before comparing.
    cf = ApplyThresholds(0.5, axis=1, from_logits=True)
    logits = np.float32([[[-1.0, 0.0], [2.0, -3.0]]])  # [1, C=2, 2]
    np.testing.assert_array_equal(to_numpy(cf(logits)), logits >= 0)
    assert to_numpy(cf(logits)).dtype == bool


def test_layer_config_round_trip_keeps_current_thresholds():
    layer = ApplyThresholds(0.5, axis=-1, name="masks")
    layer(np.zeros((2, 3), "float32"))
    layer.thresholds.assign(np.float32([0.1, 0.2, 0.3]))
    clone = ApplyThresholds.from_config(layer.get_config())
    out = clone(np.float32([[0.15, 0.15, 0.35]]))
    np.testing.assert_array_equal(to_numpy(out), [[True, False, True]])
    assert clone.name == "masks"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"thresholds": 1.5}, "in \\[0, 1\\]"),
        ({"thresholds": [[0.5]]}, "one number per class"),
        ({"from_logits": "relu"}, "from_logits must be"),
    ],
)
def test_layer_rejects_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ApplyThresholds(**kwargs)


def test_layer_rejects_wrong_class_count():
    with pytest.raises(ValueError, match="2 thresholds were given"):
        ApplyThresholds([0.1, 0.2])(np.zeros((1, 3), "float32"))


def _expected(backbone, x_val, y_val, **kw):
    scores = to_numpy(backbone.predict(x_val, verbose=0))
    return optimal_threshold(score_histogram(y_val, scores, 64), **kw), scores


def test_fit_calibrates_saves_and_reloads_in_safe_mode(tmp_path):
    x, y = _volumes(0, n=8)
    x_val, y_val = _volumes(1)
    backbone = _backbone()
    backbone.compile(optimizer=keras.optimizers.Adam(0.05), loss="binary_crossentropy")
    deploy = keras.Sequential([backbone, ApplyThresholds(0.5)])
    calibration = ThresholdCalibration((x_val, y_val), layer=deploy, num_bins=64, batch_size=4)
    backbone.fit(x, y, epochs=2, batch_size=4, verbose=0, callbacks=[calibration])

    (t, v), scores = _expected(backbone, x_val, y_val)
    np.testing.assert_array_equal(calibration.thresholds, to_numpy(t))
    np.testing.assert_allclose(calibration.values, to_numpy(v), rtol=1e-6)
    assert [epoch for epoch, _, _ in calibration.history] == [0, 1]
    layer = find_threshold_layer(deploy)
    np.testing.assert_array_equal(to_numpy(layer.thresholds), to_numpy(t))

    path = str(tmp_path / "segmenter.keras")
    deploy.save(path)
    reloaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(to_numpy(find_threshold_layer(reloaded).thresholds), to_numpy(t))
    masks = to_numpy(reloaded.predict(x_val, verbose=0))
    np.testing.assert_array_equal(masks, scores >= to_numpy(t))
    assert masks.dtype == bool and (to_numpy(t) != 0.5).any()


def test_calibrate_on_demand_with_batches_and_criterion():
    x_val, y_val = _volumes(2)
    backbone = _backbone(1)
    layer = ApplyThresholds()
    calibration = ThresholdCalibration(
        [(x_val[:3], y_val[:3]), (x_val[3:], y_val[3:])],
        layer=layer,
        criterion="recall_at_precision",
        scoring_model=backbone,
        num_bins=64,
        min_precision=0.6,
        frequency=0,
    )
    t, v = calibration.calibrate()
    (et, ev), _ = _expected(
        backbone, x_val, y_val, criterion="recall_at_precision", min_precision=0.6
    )
    np.testing.assert_array_equal(t, to_numpy(et))
    np.testing.assert_allclose(v, to_numpy(ev), rtol=1e-6, equal_nan=True)
    # The layer was built on demand; a class without a feasible threshold keeps the old one.
    np.testing.assert_array_equal(to_numpy(layer.thresholds), np.where(np.isnan(t), 0.5, t))


def test_infeasible_class_keeps_its_previous_threshold():
    x_val, y_val = _volumes(3)
    y_val[..., 2] = 0  # no positives: F1 is undefined for class 2
    backbone = _backbone(2)
    layer = ApplyThresholds([0.3, 0.3, 0.7])
    calibration = ThresholdCalibration(
        (x_val, y_val), layer=layer, scoring_model=backbone, num_bins=32
    )
    t, v = calibration.calibrate()
    assert np.isnan(t[2]) and np.isnan(v[2]) and not np.isnan(t[:2]).any()
    np.testing.assert_array_equal(to_numpy(layer.thresholds), [t[0], t[1], np.float32(0.7)])


def test_weighted_validation_data():
    x_val, y_val = _volumes(4)
    backbone = _backbone(3)
    weight = np.float32([1, 2, 0, 1, 1, 3])
    calibration = ThresholdCalibration(
        (x_val, y_val, weight),
        layer=ApplyThresholds(),
        scoring_model=backbone,
        num_bins=32,
        criterion="cost",
        cost_fn=4.0,
    )
    t, v = calibration.calibrate()
    scores = to_numpy(backbone.predict(x_val, verbose=0))
    hist = score_histogram(y_val, scores, 32, sample_weight=weight)
    et, ev = optimal_threshold(hist, "cost", cost_fn=4.0)
    np.testing.assert_array_equal(t, to_numpy(et))
    np.testing.assert_allclose(v, to_numpy(ev), rtol=1e-5)


def test_callback_errors():
    backbone = _backbone()
    x_val, y_val = _volumes(5, n=2)
    with pytest.raises(ValueError, match="needs min_precision"):
        ThresholdCalibration((x_val, y_val), criterion="recall_at_precision")
    with pytest.raises(ValueError, match="exactly one ApplyThresholds"):
        ThresholdCalibration((x_val, y_val), layer=backbone, scoring_model=backbone).calibrate()
    with pytest.raises(ValueError, match="No scoring model"):
        ThresholdCalibration((x_val, y_val), layer=ApplyThresholds()).calibrate()


def test_unweighted_then_weighted_batch_sums_both():
    """Issue 12 item 3: one unweighted, then one weighted batch used to crash (limbs + floats)."""
    x_val, y_val = _volumes(5, n=4)
    backbone = _backbone(seed=2)
    weights = np.float32([1.0, 1.0, 0.5, 2.0])
    batches = [(x_val[:2], y_val[:2]), (x_val[2:], y_val[2:], weights[2:])]
    calibration = ThresholdCalibration(batches, scoring_model=backbone, num_bins=32)
    histogram, _ = calibration.validation_histogram(backbone)
    scores = to_numpy(backbone.predict(x_val, verbose=0))
    expected = to_numpy(score_histogram(y_val[:2], scores[:2], 32)) + to_numpy(
        score_histogram(y_val[2:], scores[2:], 32, sample_weight=weights[2:])
    )
    np.testing.assert_allclose(to_numpy(histogram), expected, rtol=1e-6)
    assert to_numpy(histogram)[..., 1].sum() > 0


def test_criterion_value_and_spellings_agree():
    x_val, y_val = _volumes(6)
    backbone = _backbone(seed=3)
    spellings = [
        {"criterion": Criterion("recall_at_precision", min_precision=0.6)},
        {"criterion": "recall_at_precision:0.6"},
        {"criterion": "recall_at_precision", "min_precision": 0.6},
    ]
    results = [
        ThresholdCalibration(
            (x_val, y_val), layer=ApplyThresholds(0.5), scoring_model=backbone, num_bins=64, **kw
        ).calibrate()
        for kw in spellings
    ]
    for t, v in results[1:]:
        np.testing.assert_array_equal(t, results[0][0])
        np.testing.assert_array_equal(v, results[0][1])
    (t, _), _ = _expected(
        backbone, x_val, y_val, criterion="recall_at_precision", min_precision=0.6
    )
    np.testing.assert_array_equal(results[0][0], to_numpy(t))


def _tamper(path, values):
    """Rewrite the ApplyThresholds weight of a saved `.keras` file (a zip holding h5)."""
    import zipfile

    import h5py

    with zipfile.ZipFile(path) as z:
        files = {n: z.read(n) for n in z.namelist()}
    weights = path.parent / "weights.h5"
    weights.write_bytes(files["model.weights.h5"])
    with h5py.File(weights, "r+") as h5:
        names = []
        h5.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
        (name,) = [n for n in names if "apply_thresholds" in n]
        h5[name][...] = values
    files["model.weights.h5"] = weights.read_bytes()
    with zipfile.ZipFile(path, "w") as z:
        for n, data in files.items():
            z.writestr(n, data)


@pytest.mark.parametrize("values", [[np.nan, 0.5, 0.5], [0.5, 7.0, 0.5]])
def test_saved_thresholds_outside_the_rule_fail_to_load(tmp_path, values):
    """A `.keras` file whose thresholds hold NaN or 7.0 loaded silently (issue 12 item 16)."""
    model = keras.Sequential([keras.Input((4, 3)), ApplyThresholds(0.5)])
    path = tmp_path / "deploy.keras"
    model.save(path)
    _tamper(path, np.float32(values))
    with pytest.raises(ValueError, match=r"thresholds .* in the saved file must lie in"):
        keras.saving.load_model(path)


def test_layer_axis_out_of_range_is_a_clear_error():
    with pytest.raises(ValueError, match="axis=9 is out of range for y_pred of rank 2"):
        ApplyThresholds(0.5, axis=9)(np.zeros((1, 3), "float32"))


def test_layer_softmax_of_infinite_logits_follows_the_library_rule():
    layer = ApplyThresholds(0.5, from_logits="softmax")
    logits = np.float32([[np.inf, 0.0, -np.inf], [1.0, -np.inf, 3.0]])
    np.testing.assert_array_equal(to_numpy(layer(logits)), [[1, 0, 0], [0, 0, 1]])
