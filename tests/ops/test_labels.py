"""label_confusion_matrix against a numpy int64 bincount, on every backend."""

import numpy as np
import pytest

from tests.conftest import compiled, to_numpy
from voxelmetrics.ops import counts_from_confusion_matrix, label_confusion_matrix


def reference_matrix(y_true, y_pred, c, keep=None):
    """numpy int64 bincount of `true * C + pred` over the kept voxels."""
    t, p = np.asarray(y_true, np.int64).ravel(), np.asarray(y_pred, np.int64).ravel()
    if keep is not None:
        keep = np.broadcast_to(keep, np.shape(y_true)).ravel()
        t, p = t[keep], p[keep]
    return np.bincount(t * c + p, minlength=c * c).reshape(c, c)


@pytest.mark.parametrize("dtype", ["uint8", "int16", "int32"])
def test_random_label_maps_match_bincount(rng, dtype):
    y_true = rng.integers(0, 5, (3, 7, 6)).astype(dtype)
    y_pred = rng.integers(0, 5, (3, 7, 6)).astype(dtype)
    got = to_numpy(label_confusion_matrix(y_true, y_pred, 5))
    np.testing.assert_array_equal(got, reference_matrix(y_true, y_pred, 5))
    assert got.sum() == y_true.size


def test_absent_classes_single_voxel_and_counts(rng):
    # class 3 in neither map, class 2 only predicted, one voxel of class 1
    y_true = np.zeros((4, 4), np.uint8)
    y_true[0, 0] = 1
    y_pred = np.zeros((4, 4), np.uint8)
    y_pred[1, 1] = 2
    m = to_numpy(label_confusion_matrix(y_true, y_pred, 4))
    np.testing.assert_array_equal(m, reference_matrix(y_true, y_pred, 4))
    counts = to_numpy(counts_from_confusion_matrix(m))
    assert counts[1].tolist() == [0, 0, 1, 15]  # missed voxel: a false negative
    assert counts[2].tolist() == [0, 1, 0, 15]  # predicted only: a false positive
    assert counts[3].tolist() == [0, 0, 0, 16]  # absent everywhere


def test_ignore_index_and_mask(rng):
    y_true = rng.integers(0, 3, (5, 8)).astype(np.int32)
    y_true[0] = 255
    y_pred = rng.integers(0, 3, (5, 8)).astype(np.int32)
    mask = rng.random((5, 8)) < 0.6
    got = to_numpy(label_confusion_matrix(y_true, y_pred, 3, ignore_index=255, mask=mask))
    np.testing.assert_array_equal(got, reference_matrix(y_true, y_pred, 3, mask & (y_true != 255)))


def test_compiled_graph_gives_the_same_matrix(rng):
    y_true = rng.integers(0, 4, (6, 5)).astype(np.int32)
    y_pred = rng.integers(0, 4, (6, 5)).astype(np.int32)
    got = compiled(lambda t, p: label_confusion_matrix(t, p, 4))(y_true, y_pred)
    np.testing.assert_array_equal(to_numpy(got), reference_matrix(y_true, y_pred, 4))


@pytest.mark.parametrize(
    "y_true, y_pred, match",
    [
        (np.array([0, 1, 3]), np.array([0, 1, 1]), r"labels holds 1 id\(s\) outside \[0, 3\)"),
        (np.array([0, 1, 2]), np.array([0, -1, 1]), r"integer predictions holds 1 id"),
        (np.array([0, 1, 2]), np.array([[0, 1, 2]]), r"label map of the truth's shape \(3,\)"),
    ],
)
def test_bad_input_says_what_was_expected(y_true, y_pred, match):
    with pytest.raises(ValueError, match=match):
        label_confusion_matrix(y_true, y_pred, 3)


def test_num_classes_must_be_a_positive_integer():
    with pytest.raises(ValueError, match="num_classes must be an integer >= 1"):
        label_confusion_matrix(np.array([0]), np.array([0]), 0)


def test_with_invalid_tallies_out_of_range_ids_instead_of_raising(rng):
    y_true = rng.integers(0, 3, (4, 6)).astype(np.int32)
    y_pred = rng.integers(0, 3, (4, 6)).astype(np.int32)
    y_true[0, 0], y_pred[1, 1], y_pred[2, 2] = 7, -1, 3
    matrix, invalid = label_confusion_matrix(y_true, y_pred, 3, with_invalid=True)
    bad = (y_true > 2) | (y_pred < 0) | (y_pred > 2)
    np.testing.assert_array_equal(to_numpy(matrix), reference_matrix(y_true, y_pred, 3, ~bad))
    assert int(to_numpy(invalid)) == 3
