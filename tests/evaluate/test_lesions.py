"""Lesion-wise evaluation (`evaluate/lesions.py`): `panoptica` against the real panoptica 2.1
on random and adversarial maps, every number per instance and per class; `brats2023` and
`overlap` against hand-computed cases and a per-lesion loop written from their definitions."""

import warnings

import numpy as np
import pytest
from scipy import ndimage

from voxelmetrics.evaluate.lesions import (
    BRATS2023_MISSING_HD95,
    LesionRequest,
    MinVolume,
    class_lesions,
    components,
    lesion_scores,
    overlap_table,
    parse_convention,
    parse_min_volume,
)

SHAPE = (12, 12, 12)


def blobs(rng, n, shape=SHAPE, size=(1, 4)) -> np.ndarray:
    """A mask of n random boxes (sides in `size`), anywhere (borders included)."""
    out = np.zeros(shape, bool)
    for _ in range(n):
        side = rng.integers(*size, endpoint=True, size=3)
        corner = [rng.integers(0, s - d + 1) for s, d in zip(shape, side, strict=False)]
        out[tuple(slice(c, c + d) for c, d in zip(corner, side, strict=False))] = True
    return out


def perturbed(rng, truth: np.ndarray) -> np.ndarray:
    """A prediction near `truth`: each lesion's box shifted a little, some dropped, noise."""
    found = components(truth)
    pred = np.zeros_like(truth)
    for box in found.boxes[1:]:
        if rng.random() < 0.2:
            continue
        shift = rng.integers(-1, 2, size=3)
        moved = tuple(
            slice(max(0, b.start + d), min(n, b.stop + d))
            for b, d, n in zip(box, shift, SHAPE, strict=False)
        )
        pred[moved] = True
    return pred | blobs(rng, 2, size=(1, 2))


def cube(shape, *ranges) -> np.ndarray:
    out = np.zeros(shape, bool)
    out[tuple(slice(a, b) for a, b in ranges)] = True
    return out


# ----------------------------------------------------------------------------- panoptica


def panoptica_numbers(truth, pred, threshold=0.5, spacing=(1.0, 1.0, 1.0)):
    """panoptica 2.1's class numbers and its per-instance Dice, IoU, HD95, ASSD by truth id
    (panoptica has no zero-TP rule for HD95: given ASSD's, inf, NaN without instances)."""
    from panoptica import (
        ConnectedComponentsInstanceApproximator,
        InputType,
        NaiveThresholdMatching,
        Panoptica_Evaluator,
    )
    from panoptica.metrics import Metric
    from panoptica.utils.edge_case_handling import (
        EdgeCaseHandler,
        EdgeCaseResult,
        MetricZeroTPEdgeCaseHandling,
    )

    rules = dict(EdgeCaseHandler().listmetric_zeroTP_handling)
    rules[Metric.HD95] = MetricZeroTPEdgeCaseHandling(
        no_instances_result=EdgeCaseResult.NAN, default_result=EdgeCaseResult.INF
    )
    evaluator = Panoptica_Evaluator(
        expected_input=InputType.SEMANTIC,
        instance_approximator=ConnectedComponentsInstanceApproximator(),
        instance_matcher=NaiveThresholdMatching(matching_threshold=threshold),
        instance_metrics=[Metric.DSC, Metric.IOU, Metric.HD95, Metric.ASSD],
        edge_case_handler=EdgeCaseHandler(rules),
        log_intermediate_steps=True,
        verbose=False,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = evaluator.evaluate(
            pred.astype(np.uint8), truth.astype(np.uint8), voxelspacing=spacing, verbose=False
        )
    result = result["ungrouped"]
    numbers = result.to_dict()
    per_instance = {}
    steps = result.intermediate_steps_data
    if steps is not None and "MATCHED_INSTANCE" in steps._intermediatesteps:
        matched = steps._intermediatesteps["MATCHED_INSTANCE"]
        unmatched = steps._intermediatesteps["UNMATCHED_INSTANCE"]
        for k, ref_id in enumerate(matched.matched_instances):
            pred_id = np.unique(unmatched.prediction_arr[matched.prediction_arr == ref_id])
            per_instance[int(ref_id)] = (
                int(pred_id[0]),
                *(
                    float(result._list_metrics[m].ALL[k])
                    for m in (Metric.DSC, Metric.IOU, Metric.HD95, Metric.ASSD)
                ),
            )
    return numbers, per_instance


def ours(truth, pred, threshold=0.5, spacing=(1.0, 1.0, 1.0)):
    request = LesionRequest("panoptica", match_threshold=threshold)
    out = class_lesions(truth, pred, request, spacing=spacing)
    return out, lesion_scores(out.counts, "panoptica")


def compare_with_panoptica(truth, pred, threshold=0.5, spacing=(1.0, 1.0, 1.0)):
    expected, per_instance = panoptica_numbers(truth, pred, threshold, spacing)
    out, scores = ours(truth, pred, threshold, spacing)
    c = out.counts
    assert (c["n_true"], c["n_pred"]) == (expected["n_ref_instances"], expected["n_pred_instances"])
    assert (c["tp"], c["fp"], c["fn"]) == (expected["tp"], expected["fp"], expected["fn"])
    assert c["tp_pred"] == c["tp"]
    for name in ("rq", "sq", "sq_dice", "pq", "pq_dice", "sq_hd95", "sq_assd"):
        key = {"sq_dice": "sq_dsc", "pq_dice": "pq_dsc"}.get(name, name)
        np.testing.assert_allclose(scores[name], expected[key], rtol=1e-10, err_msg=name)
    np.testing.assert_allclose(scores["lesion_hd95"], expected["sq_hd95"], rtol=1e-10)
    np.testing.assert_allclose(scores["f1"], expected["rq"], rtol=1e-12)
    np.testing.assert_allclose(scores["precision"], expected.get("prec", np.nan), rtol=1e-12)
    np.testing.assert_allclose(scores["recall"], expected.get("rec", np.nan), rtol=1e-12)
    matched = {row["lesion"]: row for row in out.truth if row["matched"]}
    assert sorted(matched) == sorted(per_instance)
    for ref_id, (pred_id, *values) in per_instance.items():
        assert matched[ref_id]["matched"] == (pred_id,)
        got = [matched[ref_id][k] for k in ("dice", "iou", "hd95", "assd")]
        np.testing.assert_allclose(got, values, rtol=1e-10, err_msg=str(ref_id))
    for row in out.truth:  # a missed lesion scores 0 in the lesion-wise Dice
        if not row["matched"]:
            assert row["dice"] == 0.0 and row["iou"] == 0.0 and row["hd95"] == np.inf
    return out, scores


@pytest.mark.parametrize("seed", range(4))
def test_panoptica_random(seed):
    rng = np.random.default_rng(seed)
    truth = blobs(rng, 8)
    spacing = (1.0, 1.0, 1.0) if seed % 2 else (0.8, 1.0, 2.5)
    compare_with_panoptica(truth, perturbed(rng, truth), spacing=spacing)


@pytest.mark.parametrize("threshold", [0.1, 0.3, 0.7])
def test_panoptica_thresholds_and_greedy_ties(threshold):
    # Below 0.5 a lesion can have several candidates: the greedy order decides.
    rng = np.random.default_rng(11)
    truth = blobs(rng, 10, size=(1, 3))
    pred = blobs(rng, 10, size=(1, 3)) | (truth & (rng.random(SHAPE) < 0.6))
    compare_with_panoptica(truth, pred, threshold)


ADVERSARIAL = {
    # two truth lesions whose faces touch are one 26-connected lesion
    "touching": (
        cube(SHAPE, (1, 4), (1, 4), (1, 4)) | cube(SHAPE, (4, 7), (1, 4), (1, 4)),
        cube(SHAPE, (1, 4), (1, 4), (1, 4)),
    ),
    # a lesion split in two by the prediction: one half matches (IoU 0.5), one is an FP
    "split": (
        cube(SHAPE, (2, 8), (2, 4), (2, 4)),
        cube(SHAPE, (2, 5), (2, 4), (2, 4)) | cube(SHAPE, (6, 8), (2, 4), (2, 4)),
    ),
    # one prediction bridging two lesions: matches the bigger one at most
    "bridging": (
        cube(SHAPE, (2, 6), (2, 5), (2, 5)) | cube(SHAPE, (8, 9), (2, 5), (2, 5)),
        cube(SHAPE, (2, 9), (2, 5), (2, 5)),
    ),
    "border": (
        cube(SHAPE, (0, 3), (0, 12), (9, 12)) | cube(SHAPE, (11, 12), (11, 12), (0, 1)),
        cube(SHAPE, (0, 3), (0, 11), (10, 12)) | cube(SHAPE, (11, 12), (11, 12), (0, 1)),
    ),
    "single_voxels": (
        cube(SHAPE, (0, 1), (0, 1), (0, 1)) | cube(SHAPE, (5, 6), (5, 6), (5, 6)),
        cube(SHAPE, (0, 1), (0, 1), (0, 1)) | cube(SHAPE, (5, 6), (5, 6), (6, 7)),
    ),
    "empty_truth": (np.zeros(SHAPE, bool), cube(SHAPE, (1, 3), (1, 3), (1, 3))),
    "empty_prediction": (cube(SHAPE, (1, 3), (1, 3), (1, 3)), np.zeros(SHAPE, bool)),
    "no_match": (cube(SHAPE, (1, 3), (1, 3), (1, 3)), cube(SHAPE, (6, 8), (6, 8), (6, 8))),
}


@pytest.mark.parametrize("name", sorted(ADVERSARIAL))
def test_panoptica_adversarial(name):
    truth, pred = ADVERSARIAL[name]
    out, scores = compare_with_panoptica(truth, pred)
    if name == "split":
        assert (out.counts["tp"], out.counts["fp"]) == (1, 1)
    if name == "empty_truth":
        assert np.isnan(scores["recall"]) and scores["lesion_hd95"] == np.inf


def test_panoptica_both_empty():
    empty = np.zeros(SHAPE, bool)
    expected, _ = panoptica_numbers(empty, empty)
    _, scores = ours(empty, empty)
    for name in ("rq", "sq", "pq", "sq_dice", "pq_dice"):
        assert np.isnan(scores[name]) and np.isnan(
            expected[{"sq_dice": "sq_dsc", "pq_dice": "pq_dsc"}.get(name, name)]
        )
    assert np.isnan(scores["f1"]) and np.isnan(scores["lesion_dice"])


# ----------------------------------------------------------------------------- brats2023


def brats_loop(truth, pred, iterations, floor_mm3, spacing):
    """BraTS 2023's lesion-wise Dice and counts, one lesion at a time (the slow definition):
    truth components grouped by the components of the dilated truth, each group's dilation
    collects the whole predicted components it touches."""
    import cc3d

    structure = ndimage.generate_binary_structure(3, 2)
    dilated = ndimage.binary_dilation(truth, structure=structure, iterations=iterations)
    groups = cc3d.connected_components(dilated, connectivity=26)
    pred_cc = cc3d.connected_components(pred, connectivity=26)
    np.Inf = np.inf  # noqa: NPY201 (surface_distance still names it)
    import surface_distance

    touched, dices, hd95s, tp, fn = set(), [], [], 0, 0
    for g in range(1, groups.max() + 1):
        lesion = truth & (groups == g)
        grown = ndimage.binary_dilation(lesion, structure=structure, iterations=iterations)
        hit = set(np.unique(pred_cc[grown]).tolist()) - {0}
        touched |= hit
        union = np.isin(pred_cc, list(hit))
        if lesion.sum() * np.prod(spacing) <= floor_mm3:
            continue
        dices.append(2.0 * (lesion & union).sum() / (lesion.sum() + union.sum()))
        distances = surface_distance.compute_surface_distances(lesion, union, spacing)
        hd95 = surface_distance.compute_robust_hausdorff(distances, 95)
        hd95s.append(374.0 if np.isinf(hd95) else hd95)
        tp, fn = tp + bool(hit), fn + (not hit)
    fp = len(set(range(1, pred_cc.max() + 1)) - touched)
    dice = sum(dices) / (len(dices) + fp) if dices or fp else 1.0
    hd95 = (sum(hd95s) + 374.0 * fp) / (len(dices) + fp) if dices or fp else 0.0
    return dict(tp=tp, fn=fn, fp=fp, lesion_dice=dice, lesion_hd95=hd95)


@pytest.mark.parametrize("challenge", ["GLI", "MET"])
@pytest.mark.parametrize("seed", range(3))
def test_brats2023_against_the_definition(challenge, seed):
    rng = np.random.default_rng(100 + seed)
    truth = blobs(rng, 7)
    pred = perturbed(rng, truth)
    spacing = (1.0, 1.0, 1.5)
    request = LesionRequest("brats2023", challenge=challenge)
    out = class_lesions(truth, pred, request, spacing=spacing)
    iterations, floor = {"GLI": (3, 50.0), "MET": (1, 2.0)}[challenge]
    expected = brats_loop(truth, pred, iterations, floor, spacing)
    scores = lesion_scores(out.counts, "brats2023")
    assert {k: out.counts[k] for k in ("tp", "fn", "fp")} == {
        k: expected[k] for k in ("tp", "fn", "fp")
    }
    np.testing.assert_allclose(scores["lesion_dice"], expected["lesion_dice"], rtol=1e-12)
    np.testing.assert_allclose(scores["lesion_hd95"], expected["lesion_hd95"], rtol=1e-10)


def test_brats2023_by_hand():
    shape = (40, 8, 8)
    a = cube(shape, (1, 5), (1, 5), (1, 5))  # 64 voxels
    b = cube(shape, (7, 9), (1, 5), (1, 5))  # 32 voxels, 2 voxels from a: one lesion with it
    small = cube(shape, (20, 22), (1, 3), (1, 3))  # 8 voxels: at most 50 mm^3, not scored
    missed = cube(shape, (32, 37), (1, 5), (1, 5))  # 80 voxels
    truth = a | b | small | missed
    p1 = cube(shape, (2, 6), (1, 5), (1, 5))  # 64 voxels, 48 of them in a
    p2 = cube(shape, (23, 24), (1, 2), (1, 2))  # touches the dilation of `small` only
    p3 = cube(shape, (27, 29), (6, 8), (6, 8))  # touches no dilation: a false positive
    out = class_lesions(truth, p1 | p2 | p3, LesionRequest("brats2023"), spacing=(1, 1, 2))
    c = out.counts
    assert (c["n_true"], c["tp"], c["fn"], c["fp"], c["tp_pred"]) == (2, 1, 1, 1, 2)
    dice_ab = 2.0 * 48 / (96 + 64)
    scores = lesion_scores(c, "brats2023")
    np.testing.assert_allclose(scores["lesion_dice"], dice_ab / 3)
    rows = {row["voxels"]: row for row in out.truth}
    assert rows[80]["hd95"] == BRATS2023_MISSING_HD95 and rows[80]["matched"] == ()
    assert not rows[8]["scored"] and rows[8]["matched"] != ()
    assert rows[96]["dice"] == pytest.approx(dice_ab)
    # MET: one dilation (a's and b's still touch), a floor of 2 mm^3: small is scored and
    # missed, p2 no longer touches it
    out = class_lesions(
        truth, p1 | p2 | p3, LesionRequest("brats2023", challenge="MET"), boundary=None
    )
    c = out.counts
    assert (c["n_true"], c["tp"], c["fn"], c["fp"], c["tp_pred"]) == (3, 1, 2, 2, 1)


def test_brats2023_both_empty_and_only_false_positives():
    empty = np.zeros(SHAPE, bool)
    request = LesionRequest("brats2023")
    scores = lesion_scores(class_lesions(empty, empty, request).counts, "brats2023")
    assert (scores["lesion_dice"], scores["lesion_hd95"]) == (1.0, 0.0)
    pred = cube(SHAPE, (1, 3), (1, 3), (1, 3)) | cube(SHAPE, (6, 8), (6, 8), (6, 8))
    scores = lesion_scores(class_lesions(empty, pred, request).counts, "brats2023")
    assert (scores["lesion_dice"], scores["lesion_hd95"]) == (0.0, 374.0)
    assert scores["fp_per_case"] == 2


# ----------------------------------------------------------------------------- overlap


def test_overlap_by_hand():
    truth = cube(SHAPE, (0, 2), (0, 2), (0, 2)) | cube(SHAPE, (5, 9), (5, 9), (5, 9))
    truth |= cube(SHAPE, (10, 11), (10, 11), (10, 11))  # missed
    bridge = np.zeros(SHAPE, bool)  # one 26-connected diagonal from lesion 1 into lesion 2
    bridge[np.arange(1, 6), np.arange(1, 6), np.arange(1, 6)] = True
    inside = cube(SHAPE, (8, 9), (8, 9), (8, 9))  # a second prediction inside lesion 2
    fp = cube(SHAPE, (0, 1), (10, 12), (0, 1))
    out = class_lesions(truth, bridge | inside | fp, LesionRequest("overlap"), boundary=None)
    c = out.counts
    assert (c["n_true"], c["tp"], c["fn"]) == (3, 2, 1)
    assert (c["n_pred"], c["tp_pred"], c["fp"]) == (3, 2, 1)
    rows = {row["lesion"]: row for row in out.truth}
    assert rows[1]["dice"] == pytest.approx(2 * 1 / (8 + 5))
    assert rows[2]["dice"] == pytest.approx(2 * 2 / (64 + 6))  # against both predictions
    scores = lesion_scores(c, "overlap")
    assert scores["recall"] == pytest.approx(2 / 3) and scores["precision"] == pytest.approx(2 / 3)
    assert scores["lesion_dice"] == pytest.approx((2 / 13 + 4 / 70) / (3 + 1))
    # with 6-connectivity the diagonal is five one-voxel predictions: three are FPs
    out = class_lesions(
        truth, bridge | inside | fp, LesionRequest("overlap", connectivity=6), boundary=None
    )
    assert (out.counts["n_pred"], out.counts["fp"]) == (7, 4)


def test_overlap_bridging_prediction_counts_for_both():
    truth = cube(SHAPE, (1, 3), (1, 3), (1, 3)) | cube(SHAPE, (5, 7), (1, 3), (1, 3))
    pred = cube(SHAPE, (2, 6), (1, 3), (1, 3))
    out = class_lesions(truth, pred, LesionRequest("overlap"), boundary=None)
    assert (out.counts["tp"], out.counts["tp_pred"], out.counts["fp"]) == (2, 1, 0)
    assert [row["matched"] for row in out.truth] == [(1,), (1,)]
    assert out.pred[0]["matched"] == (1, 2)
    # each lesion's Dice is against the whole bridging component: 2*4 / (8 + 16)
    assert [row["dice"] for row in out.truth] == [pytest.approx(1 / 3)] * 2
    # and its boundary too, in the --surface-convention asked for (MedPy here)
    from medpy.metric.binary import hd95

    spacing = (1.0, 0.5, 2.0)
    request = LesionRequest("overlap", surface_convention="medpy")
    out = class_lesions(truth, pred, request, spacing=spacing)
    lesions = components(truth).labels
    for row in out.truth:
        expected = hd95(pred, lesions == row["lesion"], voxelspacing=spacing)
        assert row["hd95"] == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- options


def test_connectivity_changes_the_lesions():
    diagonal = np.zeros((3, 3, 3), bool)
    diagonal[0, 0, 0] = diagonal[1, 1, 1] = diagonal[1, 1, 0] = True
    assert [components(diagonal, connectivity=k).n for k in (6, 18, 26)] == [2, 1, 1]
    corner = np.zeros((3, 3, 3), bool)
    corner[0, 0, 0] = corner[1, 1, 1] = True
    assert [components(corner, connectivity=k).n for k in (6, 18, 26)] == [2, 2, 1]


def test_min_volume_drops_small_lesions_in_voxels_and_mm3():
    truth = cube(SHAPE, (0, 1), (0, 1), (0, 2)) | cube(SHAPE, (4, 7), (4, 7), (4, 7))
    pred = cube(SHAPE, (4, 7), (4, 7), (4, 7)) | cube(SHAPE, (10, 11), (10, 11), (10, 11))
    request = LesionRequest("overlap", min_true=MinVolume(2), min_pred=MinVolume(1))
    c = class_lesions(truth, pred, request, boundary=None).counts
    assert (c["n_true"], c["n_pred"], c["fp"]) == (1, 1, 0)  # 2 voxels: at most 2, dropped
    request = LesionRequest("overlap", min_true=MinVolume(2.5, "mm3"))
    c = class_lesions(truth, pred, request, spacing=(1, 1, 1.5), boundary=None).counts
    assert (c["n_true"], c["n_pred"], c["fp"]) == (2, 2, 1)  # 2 voxels are 3 mm^3: kept


def test_overlap_table_is_every_overlapping_pair():
    rng = np.random.default_rng(3)
    t, p = components(blobs(rng, 6)), components(blobs(rng, 6))
    got = overlap_table(t.labels, p.labels, t.n, p.n)
    expected = {}
    for a, b in zip(t.labels.ravel(), p.labels.ravel(), strict=False):
        if a and b:
            expected[(int(a), int(b))] = expected.get((int(a), int(b)), 0) + 1
    assert (
        dict(
            zip(zip(got[0].tolist(), got[1].tolist(), strict=False), got[2].tolist(), strict=False)
        )
        == expected
    )
    assert list(zip(got[1], got[0], strict=False)) == sorted(zip(got[1], got[0], strict=False))


def test_parsers_and_their_errors():
    assert parse_min_volume("12.5mm3") == (MinVolume(12.5, "mm3"),) * 2
    assert parse_min_volume("pred=3") == (MinVolume(), MinVolume(3.0))
    assert parse_convention("overlap") == ("overlap", None)
    assert parse_convention("brats2023") == ("brats2023", "GLI")
    for bad in ("ten", "-1", "true=1,true=2", "both=3", "3cm3"):
        with pytest.raises(ValueError, match="--min-lesion-volume"):
            parse_min_volume(bad)
    for bad in ("dice", "panoptica:GLI", "brats2023:XYZ"):
        with pytest.raises(ValueError, match="--lesions"):
            parse_convention(bad)
    with pytest.raises(ValueError, match="connectivity"):
        LesionRequest(connectivity=8)


# ----------------------------------------------------------------------------- FROC


def test_lesion_scores_are_component_maxima():
    rng = np.random.default_rng(21)
    truth = blobs(rng, 6)
    scores = np.clip(truth * 0.6 + rng.random(SHAPE) * 0.45, 0, 1)
    pred = scores >= 0.5
    out = class_lesions(truth, pred, LesionRequest("overlap"), boundary=None, scores=scores)
    labels = components(pred).labels
    for row in out.pred:
        assert row["score"] == scores[labels == row["lesion"]].max()
    by_id = {row["lesion"]: row["score"] for row in out.pred}
    for row in out.truth:
        expected = max((by_id[m] for m in row["matched"]), default=np.nan)
        np.testing.assert_equal(row["score"], expected)


def test_froc_against_a_loop_over_levels():
    from voxelmetrics.evaluate.lesions import froc

    rng = np.random.default_rng(5)
    truth = np.where(rng.random(40) < 0.2, np.nan, np.round(rng.random(40), 2))
    matched = np.round(rng.random(30), 2)
    false = np.round(rng.random(50), 2)  # rounded: ties across the three sets
    out = froc(truth, matched, false, cases=4)
    levels = sorted(set(np.concatenate([truth[~np.isnan(truth)], matched, false])), reverse=True)
    assert out["threshold"] == levels
    for k, s in enumerate(levels):
        sens = np.sum(truth >= s) / truth.size
        prec = np.sum(matched >= s) / (np.sum(matched >= s) + np.sum(false >= s))
        assert out["sensitivity"][k] == pytest.approx(sens)
        assert out["fp_per_case"][k] == pytest.approx(np.sum(false >= s) / 4)
        assert out["precision"][k] == pytest.approx(prec)
        f1 = 2 * sens * prec / (sens + prec) if sens + prec else 0.0
        assert out["f1"][k] == pytest.approx(f1)
    best = int(np.argmax(out["f1"]))  # first maximum: the highest threshold
    assert out["best_f1"]["threshold"] == levels[best]
    for rate, value in out["sensitivity_at"].items():
        ok = [
            out["sensitivity"][k]
            for k in range(len(levels))
            if out["fp_per_case"][k] <= float(rate)
        ]
        assert value == pytest.approx(max(ok, default=0.0))
    assert out["cpm"] == pytest.approx(np.mean(list(out["sensitivity_at"].values())))
