"""Hard predictions (label maps, 0/1 masks) through the engine and the report, against numpy."""

import nibabel as nib
import numpy as np
import pytest

from tests.reference import reference_counts, reference_counts_at_bins
from voxelmetrics.evaluate import InputError, Options, evaluate
from voxelmetrics.evaluate.report import summarize
from voxelmetrics.evaluate.statistics import case_statistics
from voxelmetrics.ops.accumulate import exact_counts

TINY_CHUNK_MB = 0.002  # a few rows per slab: every case streams in several chunks


def matrix_reference(y_true, y_pred, c, keep=None):
    t, p = np.asarray(y_true, np.int64).ravel(), np.asarray(y_pred, np.int64).ravel()
    if keep is not None:
        t, p = t[keep.ravel()], p[keep.ravel()]
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


def counts_reference(y_true, y_pred, c, keep=None):
    """int64 `[C, 4]` one-vs-rest counts of label maps, by brute force."""
    t, p = np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()
    if keep is not None:
        t, p = t[keep.ravel()], p[keep.ravel()]
    classes = np.arange(c)
    return reference_counts(t[:, None] == classes, p[:, None] == classes)


def label_folder(tmp_path, rng, shapes, c=4):
    """NIfTI label maps (Fortran order on disk); case 1 lacks class c-1 on both sides."""
    (tmp_path / "pred").mkdir()
    (tmp_path / "true").mkdir()
    pairs = []
    for i, shape in enumerate(shapes):
        y_true = rng.integers(0, c, shape).astype(np.uint8)
        y_pred = np.where(rng.random(shape) < 0.7, y_true, rng.integers(0, c, shape)).astype(
            np.uint8
        )
        if i == 1:
            y_true[y_true == c - 1] = 0
            y_pred[y_pred == c - 1] = 0
        for folder, array in (("true", y_true), ("pred", y_pred)):
            nib.save(nib.Nifti1Image(array, np.eye(4)), tmp_path / folder / f"case{i}.nii.gz")
        pairs.append((y_true, y_pred))
    return tmp_path / "pred", tmp_path / "true", pairs


def test_label_map_folder_gives_bincount_counts_per_case(tmp_path, rng):
    pred, true, pairs = label_folder(tmp_path, rng, [(9, 8, 7), (5, 11, 6), (1, 1, 1)])
    ev = evaluate(y_true=true, y_pred=pred, options=Options(chunk_mb=TINY_CHUNK_MB))
    assert ev.pred_kind == "labels" and ev.hard and ev.histogram is None
    assert ev.num_classes == 4  # inferred: the largest id in either map, plus one
    for case, (y_true, y_pred) in zip(ev.cases, pairs, strict=True):
        np.testing.assert_array_equal(case.matrix, matrix_reference(y_true, y_pred, 4))
        np.testing.assert_array_equal(case.counts, counts_reference(y_true, y_pred, 4))
    total = sum(counts_reference(t, p, 4) for t, p in pairs)
    np.testing.assert_array_equal(ev.counts, total)


def test_label_maps_with_ignore_index_and_given_class_count(rng):
    y_true = rng.integers(0, 3, (6, 10)).astype(np.int16)
    y_true[2] = 255
    y_pred = rng.integers(0, 3, (6, 10)).astype(np.int16)
    ev = evaluate(
        y_true=y_true,
        y_pred=y_pred,
        options=Options(num_classes=5, ignore_index=255, chunk_mb=0.0005),
    )
    keep = y_true != 255
    assert ev.num_classes == 5
    np.testing.assert_array_equal(ev.counts, counts_reference(y_true, y_pred, 5, keep))


def test_label_map_out_of_range_is_named_with_its_first_voxel(rng):
    y_true = rng.integers(0, 3, (6, 4)).astype(np.uint8)
    y_pred = rng.integers(0, 3, (6, 4)).astype(np.uint8)
    y_pred[4, 1] = 7
    with pytest.raises(InputError, match=r"class ids in \[0, 3\).*index \(4, 1\)"):
        evaluate(y_true=y_true, y_pred=y_pred, options=Options(num_classes=3, chunk_mb=0.0001))
    wide = y_true.astype(np.int32)
    wide[0, 0] = 400
    with pytest.raises(InputError, match="pass --num-classes"):
        evaluate(y_true=wide, y_pred=y_pred, options=Options())


def test_label_map_of_another_shape_is_refused(rng):
    with pytest.raises(InputError, match=r"label map .* must have the truth's shape \(4, 5\)"):
        evaluate(y_true=np.zeros((4, 5), np.uint8), y_pred=np.zeros((4, 6), np.uint8))


@pytest.mark.parametrize("dtype", [bool, np.uint8])
def test_multi_hot_masks_give_exact_counts(rng, dtype):
    y_true = rng.random((7, 6, 5, 3)) < [0.3, 0.05, 0.0]  # class 2 empty
    y_pred = rng.random((7, 6, 5, 3)) < [0.4, 0.1, 0.02]
    kind = Options(pred_kind="masks", chunk_mb=TINY_CHUNK_MB)
    ev = evaluate(y_true=y_true.astype(np.uint8), y_pred=y_pred.astype(dtype), options=kind)
    assert ev.pred_kind == "masks" and ev.histogram is None
    np.testing.assert_array_equal(ev.counts, reference_counts(y_true, y_pred))


def test_masks_holding_other_values_are_refused(rng):
    y_pred = np.zeros((4, 3, 2), np.uint8)
    y_pred[1, 2, 0] = 2
    with pytest.raises(InputError, match="0 and 1"):
        y_true = np.zeros((4, 3, 2), np.uint8)
        evaluate(y_true=y_true, y_pred=y_pred, options=Options(pred_kind="masks"))


def test_float_zero_one_arrays_stay_scores_unless_masks_is_said(rng):
    y_true = (rng.random((5, 4, 2)) < 0.5).astype(np.uint8)
    y_pred = (rng.random((5, 4, 2)) < 0.5).astype(np.float32)
    assert evaluate(y_true=y_true, y_pred=y_pred, options=Options(num_bins=8)).pred_kind == "scores"
    assert (
        evaluate(y_true=y_true, y_pred=y_pred, options=Options(pred_kind="masks")).pred_kind
        == "masks"
    )


def test_curve_options_with_hard_predictions_are_refused_before_reading():
    labels = np.zeros((3, 3), np.uint8)
    with pytest.raises(InputError, match=r"--plot needs scores.*ranks nothing"):
        evaluate(y_true=labels, y_pred=labels, options=Options(), scores_needed_for="--plot")


def test_exact_counts_split_beyond_int32():
    matrix = np.array([[3 * 2**31 + 5, 7], [2**33, 11]], np.int64)
    tp, fp = np.diag(matrix), matrix.sum(0) - np.diag(matrix)
    fn = matrix.sum(1) - tp
    expected = np.stack([tp, fp, fn, matrix.sum() - tp - fp - fn], -1)
    np.testing.assert_array_equal(exact_counts(matrix), expected)


def test_hard_report_has_counts_scores_statistics_and_no_curves(tmp_path, rng):
    pred, true, pairs = label_folder(tmp_path, rng, [(6, 5, 4), (7, 5, 3), (5, 5, 5)])
    ev = evaluate(y_true=true, y_pred=pred, options=Options())
    summary = summarize(ev, class_names=["bg", "a", "b", "c"], exclude=["bg"], bootstrap=200)
    assert summary["config"]["curves"].startswith("hard predictions rank nothing")
    assert summary["config"]["exclude"] == ["bg"] and summary["config"]["criteria"] == []
    pooled = summary["pooled"]["classes"]
    assert "average_precision" not in pooled["a"] and pooled["a"]["optimal"] == {}
    counts = [counts_reference(t, p, 4) for t, p in pairs]
    with np.errstate(invalid="ignore"):  # 0/0: a class absent from a case
        dice = np.array([2 * c[:, 0] / (2 * c[:, 0] + c[:, 1] + c[:, 2]) for c in counts])
    total = sum(counts)
    pooled_dice = 2 * total[:, 0] / (2 * total[:, 0] + total[:, 1] + total[:, 2])
    # the macro average leaves the excluded background out
    macro = summary["pooled"]["averages"]["macro"]["dice"]
    assert macro == pytest.approx(pooled_dice[1:].mean(), rel=1e-6)
    # per class: the statistics of the per-case Dice (class c absent from case 1: NaN there)
    stats = summary["samplewise"]["c"]["statistics"]["dice"]
    expected = case_statistics(dice[:, 3], ["case0", "case1", "case2"], bootstrap=200)
    assert stats["n_defined"] == 2 and stats["min_case"] == expected["min_case"]
    for key in ("mean", "std", "median", "q25", "q75", "ci_low", "ci_high"):
        assert stats[key] == pytest.approx(expected[key], rel=1e-5, abs=1e-6)  # float32 scores
    # the class average per case: the macro Dice of each case over a, b, c
    per_case_macro = np.nanmean(dice[:, 1:], axis=1)
    macro_stats = summary["samplewise"]["macro"]["statistics"]["dice"]
    assert macro_stats["mean"] == pytest.approx(per_case_macro.mean(), rel=1e-5)
    assert macro_stats["ci_low"] <= macro_stats["mean"] <= macro_stats["ci_high"]


def test_exclude_names_an_unknown_class():
    labels = np.zeros((3, 3), np.uint8)
    labels[0, 0] = 1
    ev = evaluate(y_true=labels, y_pred=labels, options=Options())
    with pytest.raises(ValueError, match="--exclude 'liver' is neither a class name"):
        summarize(ev, exclude=["liver"])
    assert summarize(ev, exclude=["0"])["config"]["exclude"] == ["class_0"]


def test_counts_at_bins_through_exact_linear_beyond_int32():
    from voxelmetrics.ops.accumulate import exact_linear
    from voxelmetrics.ops.fused import counts_at_bins

    histogram = np.array([[[2**33 + 1, 5], [7, 3 * 2**31]], [[1, 2], [3, 4]]], np.int64)
    k = np.int32([1, 0])
    got = exact_linear(lambda h: counts_at_bins(h, k), histogram, histogram[0].size)
    np.testing.assert_array_equal(got, reference_counts_at_bins(histogram, k))
