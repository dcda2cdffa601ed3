"""Every threshold criterion survives a `.keras` save and load, with every option it takes.

The criteria and their options are enumerated from `ops/criterion.py`'s own table
(`CRITERIA`, `OPTIONS`), so a criterion added there is tested here without an edit. Issue 21
fault 1: `recall_at_specificity:0.9` was saved without its floor and did not load.
"""

import keras
import numpy as np
import pytest

from tests.conftest import to_numpy
from voxelmetrics.calibration import ApplyThresholds, ThresholdCalibration, find_threshold_layer
from voxelmetrics.metrics import BestFBeta, OptimalThreshold
from voxelmetrics.ops.criterion import CRITERIA, OPTIONS, Criterion
from voxelmetrics.ops.histogram import score_histogram
from voxelmetrics.ops.thresholds import optimal_threshold, refine_threshold

NUM_BINS = 32


def _options(name: str) -> dict:
    """Values for each option `name` takes, none of them short in decimal (a lossy spelling
    such as `%g` would change 0.123456789 to 0.123457) and each in [0, 1], which every
    option accepts."""
    return {key: 0.123456789 * (i + 1) for i, key in enumerate(OPTIONS.get(name, ()))}


def _data(seed=0, n=64, c=2):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).astype("float32")
    y = (x[:, :c] + 0.8 * rng.normal(size=(n, c)) > 0).astype("float32")
    return x, y


def _scorer():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,))
    return keras.Model(inputs, keras.layers.Dense(2, activation="sigmoid")(inputs))


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a, np.float64), np.asarray(b, np.float64))


@pytest.mark.parametrize("name", CRITERIA)
def test_str_is_the_spelling_parse_reads_back_exactly(name):
    criterion = Criterion(name, **_options(name))
    assert Criterion.parse(str(criterion)) == criterion
    assert str(criterion).split(":")[0] == name
    assert Criterion.of(name, **_options(name)) == criterion


@pytest.mark.parametrize("name", CRITERIA)
def test_every_entry_point_takes_every_option_of_the_criterion(name):
    """The name with its options as keywords equals the `Criterion` and its text spelling,
    in `optimal_threshold`, `refine_threshold`, `OptimalThreshold`, `ThresholdCalibration`
    (`min_specificity` was missing from all of them)."""
    x, y = _data()
    scorer = _scorer()
    scores = to_numpy(scorer(x))
    criterion = Criterion(name, **_options(name))
    hist = score_histogram(y, scores, NUM_BINS)
    for spelled in ({"criterion": criterion}, {"criterion": str(criterion)}):
        expected = [to_numpy(a) for a in optimal_threshold(hist, **spelled)]
        got = optimal_threshold(hist, name, **_options(name))
        for a, b in zip(expected, got, strict=True):
            _same(a, to_numpy(b))
        fine = refine_threshold(y, scores, expected[0], num_bins=NUM_BINS, **spelled)
        by_name = refine_threshold(
            y, scores, expected[0], name, num_bins=NUM_BINS, **_options(name)
        )
        for a, b in zip(fine, by_name, strict=True):
            _same(to_numpy(a), to_numpy(b))
    metric = OptimalThreshold(name, num_bins=NUM_BINS, num_classes=2, **_options(name))
    assert metric.get_config()["criterion"] == str(criterion)
    calibration = ThresholdCalibration(
        (x, y),
        ApplyThresholds(),
        name,
        scoring_model=scorer,
        num_bins=NUM_BINS,
        frequency=0,
        **_options(name),
    )
    assert calibration.criterion == criterion
    _same(calibration.calibrate()[0], expected[0])


@pytest.mark.parametrize("name", CRITERIA)
def test_optimal_threshold_metric_survives_keras_save_and_load(tmp_path, name):
    x, y = _data(1)
    model = _scorer()
    criterion = Criterion(name, **_options(name))
    metric = OptimalThreshold(criterion, num_bins=NUM_BINS, class_names=["a", "b"], name="opt")
    model.compile(loss="binary_crossentropy", metrics=[metric])
    before = model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    assert loaded.get_compile_config() == model.get_compile_config()
    after = loaded.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)
    assert sorted(after) == sorted(before) and f"opt_{name}/a" in after
    _same([after[k] for k in sorted(after)], [before[k] for k in sorted(before)])
    clone = keras.metrics.deserialize(keras.metrics.serialize(metric))
    assert clone.get_config() == metric.get_config() and clone._criterion == criterion


@pytest.mark.parametrize("name", CRITERIA)
def test_calibrated_thresholds_of_every_criterion_deploy_through_save_and_load(tmp_path, name):
    x, y = _data(2)
    scorer = _scorer()
    deploy = keras.Sequential([scorer, ApplyThresholds(0.5)])
    calibration = ThresholdCalibration(
        (x, y), deploy, str(Criterion(name, **_options(name))), num_bins=NUM_BINS, frequency=0
    )
    calibration.scoring_model = scorer
    thresholds, _ = calibration.calibrate()
    path = str(tmp_path / f"{name}.keras")
    deploy.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    kept = to_numpy(find_threshold_layer(loaded).thresholds)
    _same(kept, np.where(np.isnan(thresholds), 0.5, thresholds))
    scores = to_numpy(scorer(x))
    np.testing.assert_array_equal(to_numpy(loaded(x)), scores >= kept)


def test_configs_saved_before_the_text_spelling_still_load():
    """Older configs held the name plus every option by keyword: they rebuild the same."""
    new = OptimalThreshold("cost:2:5", num_classes=2).get_config()
    old = {**new, "criterion": "cost", "beta": 1.0, "min_precision": None, "min_recall": None}
    old |= {"cost_fp": 2.0, "cost_fn": 5.0}
    assert OptimalThreshold.from_config(old).get_config() == new
    best = BestFBeta(beta=0.5, name="best_f05")
    assert BestFBeta.from_config(best.get_config()).get_config() == best.get_config()
    assert best.get_config()["beta"] == 0.5 and "criterion" not in best.get_config()


def test_an_unknown_option_is_named():
    with pytest.raises(TypeError, match="unexpected criterion option 'min_sensitivity'"):
        OptimalThreshold("recall_at_specificity", min_sensitivity=0.9)
