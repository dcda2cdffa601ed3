"""`optimal_threshold` and `refine_threshold` against a brute-force numpy search."""

import math

import numpy as np
import pytest
from keras import ops

import voxelmetrics  # noqa: F401  (sets the default backend before keras is used)
from tests.conftest import compiled
from voxelmetrics.ops.histogram import score_histogram
from voxelmetrics.ops.thresholds import (
    CRITERIA,
    Criterion,
    make_criterion,
    optimal_threshold,
    refine_threshold,
)

CASES = [
    ("f1", {}),
    ("fbeta", {"beta": 2.0}),
    ("fbeta", {"beta": 0.5}),
    ("dice", {}),
    ("iou", {}),
    ("youden", {}),
    ("recall_at_precision", {"min_precision": 0.6}),
    ("precision_at_recall", {"min_recall": 0.7}),
    ("recall_at_specificity", {"min_specificity": 0.8}),
    ("specificity_at_recall", {"min_recall": 0.6}),
    ("cost", {"cost_fp": 1.0, "cost_fn": 5.0}),
]
CASE_IDS = [f"{name}-{'-'.join(map(str, kw.values()))}" for name, kw in CASES]


# --- the reference: direct counts at each threshold, the criterion in float32 numpy ---------


def _value(tp, fp, fn, tn, name, kw):
    """Criterion and allowed flag, float32, the formulas of the docstrings, written afresh."""
    tp, fp, fn, tn = (np.float32(x) for x in (tp, fp, fn, tn))

    def ratio(n, d):
        return np.float32(n / d) if d != 0 else np.float32(np.nan)

    defined = tp + fn > 0
    if name in ("f1", "dice"):
        value = ratio(np.float32(2) * tp, np.float32(2) * tp + fp + fn)
    elif name == "fbeta":
        b2 = np.float32(kw["beta"] ** 2)
        value = ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp)
    elif name == "iou":
        value = ratio(tp, tp + fp + fn)
    elif name == "youden":
        value = np.float32(ratio(tp, tp + fn) - ratio(fp, fp + tn))
    elif name == "recall_at_precision":
        value = ratio(tp, tp + fn)
        defined = defined and ratio(tp, tp + fp) >= np.float32(kw["min_precision"])
    elif name == "precision_at_recall":
        value = ratio(tp, tp + fp)
        defined = defined and ratio(tp, tp + fn) >= np.float32(kw["min_recall"])
    elif name == "recall_at_specificity":
        value = ratio(tp, tp + fn)
        defined = defined and ratio(tn, tn + fp) >= np.float32(kw["min_specificity"])
    elif name == "specificity_at_recall":
        value = ratio(tn, tn + fp)
        defined = defined and ratio(tp, tp + fn) >= np.float32(kw["min_recall"])
    else:
        value = np.float32(kw["cost_fp"]) * fp + np.float32(kw["cost_fn"]) * fn
        defined = tp + fp + fn + tn > 0
    return value, bool(defined) and not np.isnan(value)


def brute_force(y, s, thresholds, name, kw, weight=None):
    """Best threshold per class by trying every candidate; ties to the highest."""
    y, s = np.asarray(y).astype(bool), np.asarray(s, np.float32)
    w = np.ones(y.shape[0]) if weight is None else np.asarray(weight, np.float64)
    out_t, out_v = [], []
    for c in range(y.shape[1]):
        cands = np.asarray(thresholds[c] if np.ndim(thresholds) == 2 else thresholds, np.float32)
        best = (-math.inf, math.nan, math.nan)
        for t in cands:
            pred = s[:, c] >= t
            tp = w[pred & y[:, c]].sum()
            fp = w[pred & ~y[:, c]].sum()
            fn = w[~pred & y[:, c]].sum()
            tn = w[~pred & ~y[:, c]].sum()
            value, ok = _value(tp, fp, fn, tn, name, kw)
            score = -value if name == "cost" else value
            if ok and score >= best[0]:
                best = (score, t, value)
        out_t.append(best[1])
        out_v.append(best[2])
    return np.float32(out_t), np.float32(out_v)


def grid(num_bins):
    return np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)


def assert_same(result, expected):
    t, v = (np.asarray(ops.convert_to_numpy(x)) for x in result)
    np.testing.assert_array_equal(t, expected[0])
    np.testing.assert_allclose(v, expected[1], rtol=1e-6, equal_nan=True)


# --- data: random and adversarial ----------------------------------------------------------


def _random(seed=0, n=300, c=3):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.array([0.5, 0.2, 0.05])[:c]).astype("int32")
    s = np.clip(0.35 * y + rng.random((n, c)) * 0.7, 0, 1).astype("float32")
    return y, s, 16


def _ties():
    rng = np.random.default_rng(1)
    y = (rng.random((200, 2)) < 0.4).astype("int32")
    s = (rng.integers(0, 9, (200, 2)) / 8).astype("float32")  # on the edges of 8 bins, 1.0 too
    return y, s, 8


def _edges_non_power_of_two():
    rng = np.random.default_rng(2)
    y = (rng.random((150, 2)) < 0.3).astype("int32")
    k = rng.integers(0, 11, (150, 2)).astype("float32")
    s = (k / np.float32(10) * (1 + y * 0)).astype("float32")  # float32(k)/10: the edges t_k
    return y, s, 10


def _empty_and_full():
    rng = np.random.default_rng(3)
    s = rng.random((60, 3)).astype("float32")
    y = np.stack([np.zeros(60), np.ones(60), rng.random(60) < 0.5], 1).astype("int32")
    return y, s, 8


def _single_voxel():
    return np.array([[1, 0]]), np.float32([[0.4, 0.7]]), 4


def _constant_scores():
    y = np.array([[1], [0], [1], [0], [0]])
    return y, np.full((5, 1), 0.5, "float32"), 4


DATA = {
    "random": _random,
    "ties": _ties,
    "edges_b10": _edges_non_power_of_two,
    "empty_and_full": _empty_and_full,
    "single_voxel": _single_voxel,
    "constant": _constant_scores,
}


@pytest.mark.parametrize("dataset", list(DATA))
def test_traced_matches_brute_force(dataset):
    y, s, b = DATA[dataset]()
    hist = score_histogram(y, s, num_bins=b)
    # One traced program for all criteria: one compilation per data set.
    results = compiled(
        lambda h: [optimal_threshold(h, Criterion(name, **kw)) for name, kw in CASES]
    )(hist)
    for (name, kw), result in zip(CASES, results, strict=True):
        assert_same(result, brute_force(y, s, grid(b), name, kw))


@pytest.mark.parametrize(("name", "kw"), CASES, ids=CASE_IDS)
def test_eager_matches_brute_force(name, kw):
    y, s, b = _random(seed=4)
    hist = score_histogram(y, s, num_bins=b)
    assert_same(
        optimal_threshold(hist, Criterion(name, **kw)), brute_force(y, s, grid(b), name, kw)
    )


def test_weighted_histogram_matches_brute_force():
    y, s, b = _random(seed=5, n=120)
    w = np.random.default_rng(5).integers(0, 4, 120).astype("float32")
    hist = score_histogram(y, s, num_bins=b, sample_weight=w)
    kw = {"cost_fp": 2.0, "cost_fn": 3.0}
    assert_same(optimal_threshold(hist, "cost", **kw), brute_force(y, s, grid(b), "cost", kw, w))
    assert_same(optimal_threshold(hist, "f1"), brute_force(y, s, grid(b), "f1", {}, w))


def test_custom_edges_return_edges():
    rng = np.random.default_rng(6)
    y = (rng.random((200, 2)) < 0.3).astype("int32")
    logits = (rng.normal(size=(200, 2)) + 2 * y).astype("float32")
    edges = np.linspace(-8, 8, 33).astype("float32")
    hist = score_histogram(y, logits, edges=edges, from_logits=True)
    expected = brute_force(y, logits, edges, "f1", {})
    assert_same(optimal_threshold(hist, "f1", edges=edges), expected)


# --- documented decisions ------------------------------------------------------------------


def test_ties_go_to_the_highest_threshold():
    # Bins 3..8 are empty: every threshold from 0.3 to 0.8 separates the two voxels.
    hist = score_histogram(np.array([[0], [1]]), np.float32([[0.2], [0.8]]), num_bins=10)
    t, v = optimal_threshold(hist, "f1")
    assert float(t[0]) == pytest.approx(0.8) and float(v[0]) == 1.0
    # Equal F1 from different counts: (tp, fp, fn) = (2, 0, 2) at 0.75 and (4, 4, 0) at 0.
    h = np.array([[[4, 2], [0, 0], [0, 0], [0, 2]]])
    t, v = optimal_threshold(h, "f1")
    assert float(t[0]) == 0.75 and float(v[0]) == pytest.approx(2 / 3)


def test_infeasible_and_undefined_give_nan():
    y, s, b = _empty_and_full()
    hist = score_histogram(y, s, num_bins=b)
    t, v = (np.asarray(x) for x in optimal_threshold(hist, "f1"))
    assert np.isnan(t[0]) and np.isnan(v[0])  # no positives: F1 undefined
    assert t[1] == 0.0 and v[1] == 1.0  # all positive: everything predicted
    t, v = (np.asarray(x) for x in optimal_threshold(hist, "youden"))
    assert np.isnan(t[:2]).all() and np.isnan(v[:2]).all()  # needs both kinds
    t, v = (np.asarray(x) for x in optimal_threshold(hist, "cost", cost_fn=2.0))
    assert not np.isnan(t).any() and v[0] == float(np.sum(s[:, 0] >= t[0]))
    t, v = optimal_threshold(hist, "recall_at_precision", min_precision=1.0)
    assert np.isnan(np.asarray(t)[2]) and np.isnan(np.asarray(v)[2])
    empty = np.zeros((1, 4, 2), "int32")
    results = compiled(
        lambda h: [optimal_threshold(h, Criterion(name, **kw)) for name, kw in CASES]
    )(empty)
    for (name, _), result in zip(CASES, results, strict=True):
        assert np.isnan(np.stack([ops.convert_to_numpy(x) for x in result])).all(), name


def test_max_recall_is_degenerate_and_constrained_criteria_are_not():
    y, s, b = _random(seed=7, n=400, c=1)
    hist = score_histogram(y, s, num_bins=b)
    floor = optimal_threshold(hist, "precision_at_recall", min_recall=1.0)
    assert float(floor[0][0]) <= float(s[y[:, 0] == 1, 0].min())  # every positive kept
    t, v = optimal_threshold(hist, "recall_at_precision", min_precision=0.9)
    pred = s[:, 0] >= float(t[0])
    assert (y[pred, 0] == 1).mean() >= 0.9 - 1e-6
    assert float(v[0]) == pytest.approx((y[pred, 0] == 1).sum() / y.sum())


def test_leading_axes_are_kept():
    y, s, b = _random(seed=8)
    hist = ops.convert_to_numpy(score_histogram(y, s, num_bins=b))
    stacked = optimal_threshold(np.stack([hist, hist]), "iou")
    for a, e in zip(stacked, optimal_threshold(hist, "iou"), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.stack([e, e]))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda h: optimal_threshold(h, "recall"), "criterion must be one of"),
        (lambda h: optimal_threshold(h, "recall_at_precision"), "needs min_precision"),
        (lambda h: optimal_threshold(h, "f1", beta=2.0), "beta applies"),
        (lambda h: optimal_threshold(h, "f1", min_recall=0.5), "min_recall applies"),
        (lambda h: optimal_threshold(h, "f1", cost_fn=3.0), "cost_fp / cost_fn apply"),
        (lambda h: optimal_threshold(h, "fbeta", beta=0.0), "beta must be"),
        (lambda h: optimal_threshold(h[..., :1]), r"\[..., C, B, 2\]"),
        (lambda h: optimal_threshold(h, edges=np.zeros(3)), "edges has shape"),
        (lambda h: optimal_threshold(h, refine=(1,)), "refine must be"),
    ],
)
def test_bad_arguments_raise(call, message):
    with pytest.raises(ValueError, match=message):
        call(np.zeros((2, 4, 2), "int32"))


def test_criteria_are_all_tested():
    assert {name for name, _ in CASES} == set(CRITERIA)
    assert make_criterion("fbeta", beta=2.0).beta == 2.0


# --- refinement ----------------------------------------------------------------------------


def _window(coarse, num_bins, refine_bins, window=1):
    """The fine candidates of each class: u_i, i in [max(k-w, 0) F, +2wF), i < B F."""
    fine = num_bins * refine_bins
    rows = []
    for t in coarse:
        k = int(np.searchsorted(grid(num_bins), t, side="right")) - 1
        first = max(k - window, 0) * refine_bins
        i = np.arange(first, first + 2 * window * refine_bins)
        i = i[i < fine]
        rows.append(np.float32(i) / np.float32(fine))
    return rows


@pytest.mark.parametrize(
    ("window", "cases"), [(1, CASES), (3, [CASES[0], CASES[-1], CASES[-3], CASES[-5]])]
)
def test_refine_matches_brute_force_on_the_window(window, cases):
    y, s, b = _random(seed=9, n=300)
    hist = score_histogram(y, s, num_bins=b)

    def both(h, yt, yp):
        out = []
        for name, kw in cases:
            coarse = optimal_threshold(h, Criterion(name, **kw))
            fine = refine_threshold(
                yt, yp, coarse[0], Criterion(name, **kw), num_bins=b, refine_bins=8, window=window
            )
            out.append((coarse, fine))
        return out

    for (name, kw), (coarse, result) in zip(cases, compiled(both)(hist, y, s), strict=True):
        coarse, coarse_v = (np.asarray(ops.convert_to_numpy(x)) for x in coarse)
        expected = [[], []]
        for c, cands in enumerate(_window(np.nan_to_num(coarse), b, 8, window)):
            t, v = brute_force(y[:, c : c + 1], s[:, c : c + 1], cands, name, kw)
            expected[0].append(np.nan if np.isnan(coarse[c]) else t[0])
            expected[1].append(np.nan if np.isnan(coarse[c]) else v[0])
        assert_same(result, np.float32(expected))
        r = np.asarray(ops.convert_to_numpy(result[1]))
        better = r <= coarse_v if name == "cost" else r >= coarse_v
        assert (better | np.isnan(coarse_v)).all(), name


def test_refine_traced_and_via_optimal_threshold():
    y, s, b = _random(seed=10, n=200, c=2)
    hist = score_histogram(y, s, num_bins=b)
    direct = refine_threshold(y, s, optimal_threshold(hist)[0], num_bins=b)
    via = optimal_threshold(hist, refine=(y, s))
    fn = compiled(lambda h, yt, yp: optimal_threshold(h, refine=(yt, yp)))
    for result in (via, fn(hist, y, s)):
        for a, e in zip(result, direct, strict=True):
            np.testing.assert_array_equal(ops.convert_to_numpy(a), ops.convert_to_numpy(e))


def test_refine_keeps_nan_and_options():
    y, s, b = _empty_and_full()
    hist = score_histogram(y, s, num_bins=b)
    t, v = refine_threshold(y, s, optimal_threshold(hist)[0], num_bins=b)
    assert np.isnan(np.asarray(t)[0]) and np.isnan(np.asarray(v)[0])
    # Channels-first logits with a mask: same answer as the plain call on the kept voxels.
    keep = np.arange(60) % 3 != 0
    logits = np.log(np.clip(s, 1e-6, 1 - 1e-6) / np.clip(1 - s, 1e-6, 1))
    hist_kept = score_histogram(y[keep], s[keep], num_bins=b)
    coarse = optimal_threshold(hist_kept)[0]
    plain = refine_threshold(y[keep], s[keep], coarse, num_bins=b)
    cf = refine_threshold(y.T, logits.T, coarse, num_bins=b, axis=0, from_logits=True, mask=keep)
    np.testing.assert_allclose(np.asarray(cf[1]), np.asarray(plain[1]), rtol=1e-5)
    with pytest.raises(ValueError, match="exceeds 2\\*\\*24"):
        refine_threshold(y, s, coarse, num_bins=4096, refine_bins=8192)


def _exact_best_f1(y, s):
    """The best F1 over every distinct score as threshold (sort-based, float64)."""
    best = []
    for c in range(y.shape[1]):
        order = np.argsort(-s[:, c], kind="stable")
        ss, yy = s[order, c], y[order, c]
        last = np.r_[ss[1:] != ss[:-1], True]  # end of each tie group
        tp, pred = np.cumsum(yy)[last], np.arange(1, len(yy) + 1)[last]
        best.append(np.max(2 * tp / (pred + yy.sum())))
    return np.array(best)


def test_refine_is_closer_to_the_exact_optimum():
    # Confident, narrow scores: the 1/16 grid straddles the optimum, the 1/256 grid does not.
    rng = np.random.default_rng(11)
    y = (rng.random((20000, 2)) < np.array([0.3, 0.02])).astype("int32")
    s = np.clip(rng.normal(0.45 + 0.04 * y, 0.02), 0, 1).astype("float32")
    hist = score_histogram(y, s, num_bins=16)
    coarse = np.asarray(optimal_threshold(hist)[1])
    refined = np.asarray(optimal_threshold(hist, refine=(y, s))[1])
    exact = _exact_best_f1(y, s)
    assert (refined <= exact + 1e-6).all() and (refined >= coarse).all()
    assert (exact - refined < 5e-3).all() and (exact - coarse > 2e-2).all()


def test_refine_takes_python_lists_like_arrays():
    y_true = [[1, 0], [0, 1], [1, 1], [0, 0]]
    y_pred = [[0.9, 0.2], [0.4, 0.6], [0.5, 0.95], [0.3, 0.7]]
    coarse = np.float32([0.5, 0.5])
    from_lists = refine_threshold(y_true, y_pred, coarse, num_bins=10)
    from_arrays = refine_threshold(np.array(y_true), np.float32(y_pred), coarse, num_bins=10)
    for got, want in zip(from_lists, from_arrays, strict=True):
        np.testing.assert_array_equal(ops.convert_to_numpy(got), ops.convert_to_numpy(want))
