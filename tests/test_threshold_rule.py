"""One threshold rule for every layer (`ops/counting.py` `predicted`): a score equal to the
float32 of the threshold is predicted, in-graph and on the host alike.

0.7 is above its float32 (0.69999999); the offline boundary and lesion masks compared
float32 scores with the float64 threshold and left such a voxel out, while the counts of
the same run put it in.
"""

import numpy as np
import pytest

import voxelmetrics as vm
from tests.conftest import to_numpy
from voxelmetrics.calibration import ApplyThresholds
from voxelmetrics.evaluate.lesions import FIELDS, LesionRequest, case_lesions
from voxelmetrics.evaluate.surface import SurfaceRequest, case_measures
from voxelmetrics.evaluate.whole_case import WholeCase

THRESHOLD = 0.7
AT = np.float32(THRESHOLD)  # the score on the threshold: float32(0.7) < 0.7
assert float(AT) < THRESHOLD


@pytest.fixture(params=["float32", "float64"])
def case(request):
    """`(truth, scores)`: one `(1, 6, 6, 6, 1)` cube, scored exactly float32(0.7), elsewhere 0.2."""
    truth = np.zeros((1, 6, 6, 6, 1), np.uint8)
    truth[0, 1:4, 2:5, 1:5] = 1
    scores = np.where(truth == 1, AT, np.float32(0.2)).astype(request.param)
    return truth, scores


def test_the_counts_predict_the_voxels_on_the_threshold(case):
    truth, scores = case
    tp, fp, fn, _ = to_numpy(vm.confusion_counts(truth, scores, threshold=THRESHOLD))[0]
    assert (tp, fp, fn) == (truth.sum(), 0, 0)


def test_the_thresholding_layer_predicts_them(case):
    truth, scores = case
    masks = to_numpy(ApplyThresholds(THRESHOLD)(scores))
    np.testing.assert_array_equal(masks, truth.astype(bool))


def test_the_in_graph_boundary_masks_predict_them(case):
    truth, scores = case
    hd = vm.hausdorff_distance(truth, scores, threshold=THRESHOLD)
    assert to_numpy(hd).tolist() == [[0.0]]


def test_the_offline_boundary_masks_predict_them(case):
    truth, scores = case
    measured = case_measures(
        truth[0],
        scores[0],
        SurfaceRequest(("hd95", "nsd"), tolerance=1.0),
        spacing=(1.0, 1.0, 1.0),
        threshold=THRESHOLD,
        axis=-1,
        num_classes=1,
        true_labels=False,
        pred_labels=False,
    )
    assert (measured["hd95"].tolist(), measured["nsd"].tolist()) == ([0.0], [1.0])


def test_the_offline_lesion_masks_predict_them(case):
    truth, scores = case
    whole = WholeCase(truth[0], scores[0], (1.0, 1.0, 1.0), THRESHOLD, -1, 1, False, False)
    counts = case_lesions(whole, LesionRequest("panoptica")).counts[0]
    assert [counts[FIELDS.index(f)] for f in ("tp", "fp", "fn")] == [1, 0, 0]
