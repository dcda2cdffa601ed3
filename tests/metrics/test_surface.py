"""Boundary Keras metrics: the mean over volumes of MONAI's per-volume values, sum-merged
state, `class_names` log keys, and a run inside `model.fit` / `evaluate`."""

import keras
import numpy as np
import pytest

from tests.conftest import to_numpy
from tests.ops.test_surface import monai
from voxelmetrics.metrics import (
    AverageSurfaceDistance,
    HausdorffDistance,
    SamplewiseDice,
    SurfaceDice,
)

NAMES = ["organ", "lesion"]
SPACING = (1.0, 1.5, 2.0)


def volumes(rng, n=3, size=10):
    """Ellipsoid truths with noisy scores; volume 2 has an empty lesion in both."""
    grid = np.stack(np.meshgrid(*[np.arange(size)] * 3, indexing="ij"), -1)
    y = np.zeros((n, size, size, size, 2), np.float32)
    for i in range(n):
        centre = rng.uniform(3, size - 3, 3)
        y[i, ..., 0] = np.linalg.norm(grid - centre, axis=-1) < rng.uniform(2.5, 4)
        y[i, ..., 1] = np.linalg.norm(grid - centre - 1, axis=-1) < 1.8
    y[2, ..., 1] = 0
    scores = np.clip(y * 0.8 + rng.normal(0, 0.25, y.shape), 0, 1).astype(np.float32)
    scores[2, ..., 1] = 0
    return y, scores


def monai_mean(values: np.ndarray) -> np.ndarray:
    """Per class, the mean over the volumes where the value is defined (not NaN)."""
    return np.nanmean(values, axis=0)


def monai_values(name, y, scores):
    from monai.metrics import (
        compute_average_surface_distance,
        compute_hausdorff_distance,
        compute_surface_dice,
    )

    p = scores >= 0.5
    if name == "hd95":
        return monai(compute_hausdorff_distance, y > 0, p, percentile=95, spacing=SPACING)
    if name == "assd":
        return monai(compute_average_surface_distance, y > 0, p, symmetric=True, spacing=SPACING)
    return monai(compute_surface_dice, y > 0, p, [2.0, 2.0], spacing=SPACING)


METRICS = {
    "hd95": lambda **kw: HausdorffDistance(percentile=95, spacing=SPACING, **kw),
    "assd": lambda **kw: AverageSurfaceDistance(spacing=SPACING, **kw),
    "nsd": lambda **kw: SurfaceDice(2.0, spacing=SPACING, **kw),
}


@pytest.mark.parametrize("name", METRICS)
def test_mean_over_volumes_matches_monai(rng, name):
    y, scores = volumes(rng)
    expected = monai_values(name, y, scores)
    assert np.isnan(expected[2, 1])  # both empty: left out of the lesion's mean
    metric = METRICS[name](average=None, class_names=NAMES)
    metric.update_state(y[:2], scores[:2])  # two batches: the state sums
    metric.update_state(y[2:], scores[2:])
    logs = {k: float(to_numpy(v)) for k, v in metric.result().items()}
    key = metric.name
    assert sorted(logs) == [f"{key}/lesion", f"{key}/organ"]
    np.testing.assert_allclose(
        [logs[f"{key}/organ"], logs[f"{key}/lesion"]], monai_mean(expected), rtol=1e-5
    )
    macro = METRICS[name]()
    macro.update_state(y, scores)
    np.testing.assert_allclose(to_numpy(macro.result()), monai_mean(expected).mean(), rtol=1e-5)
    metric.reset_state()
    assert np.isnan(to_numpy(metric.result()[f"{key}/organ"]))


def test_volume_weights_and_missed_structure(rng):
    y, scores = volumes(rng)
    values = monai_values("nsd", y, scores)
    metric = SurfaceDice(2.0, spacing=SPACING, average=None)
    weights = np.array([1.0, 3.0, 2.0], np.float32)
    metric.update_state(y, scores, sample_weight=weights)
    defined = ~np.isnan(values)
    expected = (np.where(defined, values, 0) * weights[:, None]).sum(0) / (
        defined * weights[:, None]
    ).sum(0)
    np.testing.assert_allclose(to_numpy(metric.result()), expected, rtol=1e-5)
    missed = HausdorffDistance(spacing=SPACING, average=None)
    scores[0, ..., 1] = 0  # the lesion of volume 0 is missed: its HD95 is inf, not 0
    missed.update_state(y, scores)
    assert np.isinf(to_numpy(missed.result())[1])


def test_config_round_trip_and_bad_input():
    metric = HausdorffDistance(percentile=None, directed=True, spacing=2.0, class_names=NAMES)
    clone = HausdorffDistance.from_config(metric.get_config())
    assert clone.get_config() == metric.get_config()
    with pytest.raises(ValueError, match="tolerance must be a finite number"):
        SurfaceDice(-1.0)
    with pytest.raises(ValueError, match="sample_weight of a boundary metric weighs whole"):
        SurfaceDice(1.0).update_state(
            np.zeros((1, 4, 4, 4, 2)),
            np.zeros((1, 4, 4, 4, 2)),
            sample_weight=np.ones((1, 4, 4, 4)),
        )
    with pytest.raises(ValueError, match=r"percentile must lie in \[0, 100\]"):
        HausdorffDistance(percentile=120)


def test_inside_fit_and_evaluate(rng):
    """Logged under the backend's training loop; evaluate equals the direct computation."""
    y, _ = volumes(rng, n=4, size=8)
    x = y[..., :1] + rng.normal(0, 0.3, y[..., :1].shape).astype(np.float32)
    keras.utils.set_random_seed(1)
    inputs = keras.Input((8, 8, 8, 1))
    outputs = keras.layers.Conv3D(2, 3, padding="same", activation="sigmoid")(inputs)
    model = keras.Model(inputs, outputs)
    model.compile(
        optimizer="adam",
        loss="binary_crossentropy",
        metrics=[
            HausdorffDistance(class_names=NAMES, average=None, spacing=SPACING),
            AverageSurfaceDistance(spacing=SPACING),
            SurfaceDice(2.0, spacing=SPACING),
        ],
    )
    history = model.fit(x, y, epochs=1, batch_size=2, verbose=0)
    assert {"hd95/organ", "hd95/lesion", "assd", "surface_dice"} <= set(history.history)
    logs = model.evaluate(x, y, batch_size=2, verbose=0, return_dict=True)
    scores = model.predict(x, batch_size=2, verbose=0)
    for name, key in (("assd", "assd"), ("nsd", "surface_dice")):
        per_volume = monai_values(name, y, scores)
        expected = np.nanmean(monai_mean(per_volume))
        np.testing.assert_allclose(logs[key], expected, rtol=1e-4)


def test_exclusive_classes_use_the_argmax(rng):
    """mode="sparse": integer truth, logits; the prediction is the argmax over classes."""
    from voxelmetrics.ops import average_surface_distance

    labels = rng.integers(0, 3, (2, 6, 7, 5))
    logits = rng.normal(size=(2, 6, 7, 5, 3)).astype(np.float32)
    metric = AverageSurfaceDistance(mode="sparse", from_logits=True, average=None)
    metric.update_state(labels, logits)
    predicted = np.argmax(logits, -1)
    per_volume = to_numpy(average_surface_distance(labels, predicted, num_classes=3))
    np.testing.assert_allclose(to_numpy(metric.result()), np.nanmean(per_volume, 0), rtol=1e-6)


def test_hausdorff_default_name_says_which_percentile():
    assert HausdorffDistance().name == "hd95"
    assert HausdorffDistance(percentile=None).name == "hd"
    assert HausdorffDistance(percentile=99).name == "hd99"
    assert HausdorffDistance(percentile=None, name="boundary").name == "boundary"


# ----------------------------------------------------------------------------- issue 21, fault 6


@pytest.mark.parametrize("name", METRICS)
def test_a_nan_score_is_left_out_and_tallied(rng, name):
    """Fault 6: a NaN score raised in `update_state`; now the voxel is left out of both
    masks, as every metric leaves invalid values out, and `invalid_count()` says so."""
    y, scores = volumes(rng)
    bad = scores.copy()
    bad[0, 1, 2, 3, 0] = np.nan
    bad[1, 0, 0, 0, 1] = 1.5  # a probability outside [0, 1]
    clean_y, clean = y.copy(), scores.copy()
    clean_y[0, 1, 2, 3, 0] = clean[0, 1, 2, 3, 0] = 0
    clean_y[1, 0, 0, 0, 1] = clean[1, 0, 0, 0, 1] = 0
    ours, expected = METRICS[name](average=None), METRICS[name](average=None)
    ours.update_state(y, bad)
    expected.update_state(clean_y, clean)
    np.testing.assert_allclose(to_numpy(ours.result()), to_numpy(expected.result()))
    np.testing.assert_array_equal(ours.invalid_count(), [1, 1])
    np.testing.assert_array_equal(expected.invalid_count(), [0, 0])


def test_logits_take_the_library_activation():
    """Fault 6: the boundary metrics had their own softmax; one +inf logit is a certain
    winner (probability 1), several +inf decide nothing (left out, tallied per class)."""
    y = np.zeros((1, 6, 6, 6, 2), np.float32)
    y[0, 1:4, 1:4, 1:4, 0] = 1
    y[0, ..., 1] = 1 - y[0, ..., 0]
    logits = np.where(y > 0, 5.0, -5.0).astype(np.float32)
    logits[0, 5, 5, 5] = [np.inf, 0.0]  # class 0 wins here
    logits[0, 0, 0, 5] = [np.inf, np.inf]  # undefined
    probabilities = (y > 0).astype(np.float32)
    probabilities[0, 5, 5, 5] = [1.0, 0.0]
    probabilities[0, 0, 0, 5] = [0.0, 0.0]
    truth = y.copy()
    truth[0, 0, 0, 5] = 0
    kw = {"average": None, "percentile": None, "mode": "multiclass", "threshold": 0.5}
    ours = HausdorffDistance(from_logits=True, **kw)
    ours.update_state(y, logits)
    expected = HausdorffDistance(**kw)
    expected.update_state(truth, probabilities)
    np.testing.assert_allclose(to_numpy(ours.result()), to_numpy(expected.result()))
    assert to_numpy(ours.result())[0] == pytest.approx(np.sqrt(12))  # the winner counts
    np.testing.assert_array_equal(ours.invalid_count(), [1, 1])


@pytest.mark.parametrize("name", [*METRICS, "samplewise_dice"])
def test_a_bad_volume_weight_is_left_out_and_tallied(rng, name):
    """Fault 6: a NaN `[B]` volume weight made the mean NaN without a word; now that volume
    weighs nothing and its voxels are tallied as invalid in every class."""
    y, scores = volumes(rng)
    make = METRICS.get(name, lambda **kw: SamplewiseDice(**kw))
    ours, expected = make(average=None), make(average=None)
    ours.update_state(y, scores, sample_weight=np.array([np.nan, 2.0, 1.0], np.float32))
    expected.update_state(y[1:], scores[1:], sample_weight=np.array([2.0, 1.0], np.float32))
    np.testing.assert_allclose(to_numpy(ours.result()), to_numpy(expected.result()), 1e-6)
    np.testing.assert_array_equal(ours.invalid_count(), [10**3, 10**3])
