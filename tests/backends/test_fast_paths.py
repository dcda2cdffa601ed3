"""Each backend's fast path against the generic `keras.ops` path, bit for bit, and the
scatter-free (sorted-score) histogram against the scatter histogram, on random and
adversarial data. Runs under whichever backend the process imported."""

import numpy as np
import pytest
from keras import ops

import voxelmetrics as vm
from tests.conftest import compiled, to_numpy
from voxelmetrics.backends import _counting, _dispatch, _sorting, bincount, sort_with_labels
from voxelmetrics.ops import histogram
from voxelmetrics.ops._inputs import check_inputs

NUM_BINS = (1, 7, 1024)


def _edge_scores(rng: np.random.Generator, shape: tuple, num_bins: int) -> np.ndarray:
    """Scores that sit on, just below and just above the float32 bin edges, plus 0 and 1."""
    edges = np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)
    pool = np.concatenate(
        [
            edges,
            np.nextafter(edges, np.float32(-1)),
            np.nextafter(edges, np.float32(2)),
            np.float32([0.0, 1.0, np.nextafter(np.float32(1), np.float32(0))]),
        ]
    )
    pool = pool[(pool >= 0) & (pool <= 1)]
    return rng.choice(pool, size=shape).astype(np.float32)


def _volumes(rng: np.random.Generator, kind: str, num_bins: int):
    shape = (2, 5, 6, 7, 3)
    y_true = rng.random(shape) < np.array([0.3, 0.05, 0.0])  # class 2 has no positives
    if kind == "random":
        y_pred = rng.random(shape, dtype=np.float32)
    elif kind == "edges":
        y_pred = _edge_scores(rng, shape, num_bins)
    elif kind == "constant":
        y_pred = np.full(shape, 0.5, np.float32)
    else:  # "extremes": only 0 and 1, every voxel positive for class 0
        y_pred = rng.choice(np.float32([0.0, 1.0]), size=shape)
        y_true[..., 0] = True
    return y_true, y_pred


# ----------------------------------------------------------------------------- bincount


@pytest.mark.parametrize("kind", ["random", "first", "last", "single_bin"])
def test_bincount_fast_path_matches_generic(rng, kind):
    length = 1 if kind == "single_bin" else 97
    n = 5000
    ids = {
        "random": rng.integers(0, length, n),
        "first": np.zeros(n, int),
        "last": np.full(n, length - 1),
        "single_bin": np.zeros(n, int),
    }[kind].astype(np.int32)
    expected = np.bincount(ids, minlength=length)
    fast = to_numpy(compiled(lambda i: bincount(i, length))(ids))
    generic = to_numpy(compiled(lambda i: _dispatch.generic_bincount(i, length))(ids))
    assert fast.dtype == generic.dtype == np.int32
    np.testing.assert_array_equal(fast, expected)
    np.testing.assert_array_equal(generic, expected)


def test_weighted_bincount_fast_path_matches_generic(rng):
    ids = rng.integers(0, 31, 4000).astype(np.int32)
    weights = rng.integers(0, 8, 4000).astype(np.float32) / 4  # sums exact in float32
    expected = np.bincount(ids, weights=weights, minlength=31)
    fast = to_numpy(compiled(lambda i, w: bincount(i, 31, w))(ids, weights))
    generic = to_numpy(compiled(lambda i, w: _dispatch.generic_bincount(i, 31, w))(ids, weights))
    np.testing.assert_array_equal(fast, expected.astype(np.float32))
    np.testing.assert_array_equal(generic, fast)


# ----------------------------------------------------------------------------- count_true


@pytest.mark.parametrize(
    ("shape", "axes", "num_flags"),
    [
        ((2, 6, 8, 16, 3), (0, 1, 2, 3), 5),  # multi-label, channels last
        ((2, 3, 8, 16, 10), (0, 2, 3, 4), 4),  # channels first
        ((2, 6, 8, 16, 3), (1, 2, 3), 5),  # per sample: the batch axis is kept
        ((2, 7, 11, 13, 3), (0, 1, 2, 3), 5),  # no block divisor >= 8: generic fallback
        ((4096, 2), (0,), 1),  # one flag, 32-bit field
        ((64, 64, 2), (0, 1), 32),  # 32 flags, 1-bit fields
    ],
)
@pytest.mark.parametrize("fill", ["random", "all_true"])
def test_packed_count_true_matches_generic(rng, shape, axes, num_flags, fill):
    flags = [
        rng.random(shape) < rng.random() if fill == "random" else np.ones(shape, bool)
        for _ in range(num_flags)
    ]
    if num_flags > 1:  # one flag broadcast along the class axis
        flags[0] = flags[0][..., :1]
    expected = [np.broadcast_to(f, shape).sum(axis=axes) for f in flags]
    packed = compiled(lambda *f: _counting.packed_count_true(list(f), axes))(*flags)
    generic = compiled(lambda *f: _counting.generic_count_true(list(f), axes))(*flags)
    chosen = compiled(lambda *f: _counting.count_true(list(f), axes))(*flags)
    for want, p, g, c in zip(expected, packed, generic, chosen, strict=True):
        assert to_numpy(p).dtype == np.int32
        np.testing.assert_array_equal(to_numpy(p), want)
        np.testing.assert_array_equal(to_numpy(g), want)
        np.testing.assert_array_equal(to_numpy(c), want)


# ----------------------------------------------------------------------------- sorting


@pytest.mark.parametrize("ties", [False, True])
def test_sort_with_labels_fast_path_matches_generic(rng, ties):
    keys = rng.random((3, 500), dtype=np.float32)
    if ties:
        keys = np.round(keys * 8) / 8
        keys[1] = 0.25
    keys[2, :7] = np.inf
    labels = rng.integers(0, 2, (3, 500)).astype(np.int32)
    fast = [to_numpy(x) for x in compiled(sort_with_labels)(keys, labels)]
    generic = [to_numpy(x) for x in compiled(_sorting.generic_sort_with_labels)(keys, labels)]
    np.testing.assert_array_equal(fast[0], np.sort(keys, axis=-1))
    np.testing.assert_array_equal(generic[0], fast[0])
    # Within a run of equal keys the order is free: compare the label sums per distinct key.
    for c in range(3):
        for key in np.unique(keys[c]):
            expected = labels[c][keys[c] == key].sum()
            assert fast[1][c][fast[0][c] == key].sum() == expected
            assert generic[1][c][generic[0][c] == key].sum() == expected


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("size", [1, 2, 7, 1000])
def test_binary_searchsorted_matches_numpy(rng, side, size):
    sequence = np.sort(np.round(rng.random(size) * 20) / 20).astype(np.float32)
    values = np.concatenate([sequence, rng.random(50), [-1.0, 0.0, 1.0, 2.0, np.inf]])
    values = values.astype(np.float32)
    expected = np.searchsorted(sequence, values, side=side)
    binary = compiled(lambda a, v: _sorting.binary_searchsorted(a, v, side))(sequence, values)
    chosen = compiled(lambda a, v: _sorting.searchsorted(a, v, side))(sequence, values)
    np.testing.assert_array_equal(to_numpy(binary), expected)
    np.testing.assert_array_equal(to_numpy(chosen), expected)


# ----------------------------------------------------------------------------- histograms


def _both_histograms(y_true, y_pred, num_bins, jit, **kwargs):
    def call(method):
        def fn(t, p):
            return vm.score_histogram(
                t, p, num_bins, histogram_method=method, with_invalid=True, **kwargs
            )

        hist, invalid = (compiled(fn) if jit else fn)(y_true, y_pred)
        return to_numpy(hist), to_numpy(invalid)

    return call("scatter"), call("sort")


def _direct_counts(y_true, y_pred, num_bins):
    """Independent reference: positives and negatives with score >= t_k, by comparison."""
    t = np.arange(num_bins, dtype=np.float32) / np.float32(num_bins)
    s = np.moveaxis(y_pred, -1, 0).reshape(y_pred.shape[-1], -1)
    y = np.moveaxis(y_true, -1, 0).reshape(y_pred.shape[-1], -1)
    above = s[:, None, :] >= t[None, :, None]
    return np.stack([(above & ~y[:, None]).sum(-1), (above & y[:, None]).sum(-1)], -1)


@pytest.mark.parametrize(
    ("num_bins", "kind", "jit"),
    [(b, k, True) for b in NUM_BINS for k in ("random", "edges", "constant", "extremes")]
    + [(1024, "edges", False)],
)
def test_sorted_histogram_matches_scatter(rng, num_bins, kind, jit):
    y_true, y_pred = _volumes(rng, kind, num_bins)
    (scatter, scatter_invalid), (by_sort, sort_invalid) = _both_histograms(
        y_true, y_pred, num_bins, jit
    )
    assert scatter.dtype == by_sort.dtype
    np.testing.assert_array_equal(by_sort, scatter)
    np.testing.assert_array_equal(sort_invalid, scatter_invalid)
    # and both against a direct count of `score >= t_k`
    at_or_above = np.cumsum(by_sort[:, ::-1], axis=1)[:, ::-1]
    np.testing.assert_array_equal(at_or_above, _direct_counts(y_true, y_pred, num_bins))


@pytest.mark.parametrize("jit", [False, True])
def test_sorted_histogram_with_mask_and_channels_first(rng, jit):
    y_true, y_pred = _volumes(rng, "edges", 16)
    y_true, y_pred = np.moveaxis(y_true, -1, 1), np.moveaxis(y_pred, -1, 1)
    mask = rng.random((2, 5, 6, 7)) < 0.6
    scatter, by_sort = _both_histograms(y_true, y_pred, 16, jit, axis=1, mask=mask)
    np.testing.assert_array_equal(by_sort[0], scatter[0])
    np.testing.assert_array_equal(by_sort[1], scatter[1])


@pytest.mark.parametrize("jit", [True])
def test_sorted_histogram_sparse_labels(rng, jit):
    labels = rng.integers(0, 4, (2, 6, 6, 5))
    labels[0, 0] = 9  # ignored
    logits = rng.normal(size=(2, 6, 6, 5, 4)).astype(np.float32)
    kwargs = {"from_logits": True, "ignore_index": 9}
    scatter, by_sort = _both_histograms(labels, logits, 32, jit, **kwargs)
    np.testing.assert_array_equal(by_sort[0], scatter[0])
    np.testing.assert_array_equal(by_sort[1], scatter[1])


def test_sorted_histogram_invalid_scores_are_tallied_not_binned(rng):
    """The kernels as traced code runs them (no eager value check), on every backend."""
    y_true, y_pred = _volumes(rng, "random", 8)
    y_pred[0, 0, 0, 0] = [np.nan, -0.5, 1.5]
    y_pred[1, 2, 3, 4, 1] = np.inf
    spec = check_inputs(y_true, np.zeros_like(y_pred), axis=-1, from_logits=False)
    y_true_t, y_pred_t = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
    hist = {}
    for method in ("scatter", "sort"):
        counts, invalid = histogram._histogram_kernel(
            y_true_t, y_pred_t, None, None, None, spec=spec, num_bins=8, method=method
        )
        hist[method] = (to_numpy(counts), to_numpy(invalid))
    np.testing.assert_array_equal(hist["sort"][0], hist["scatter"][0])
    assert hist["sort"][1].tolist() == hist["scatter"][1].tolist() == [1, 2, 1]
    assert hist["sort"][0].sum() == y_pred.size - 4
    with pytest.raises(ValueError, match="NaN"):
        vm.score_histogram(y_true, y_pred, 8, histogram_method="sort")


def test_sorted_histogram_custom_edges(rng):
    y_true = rng.random((3000, 2)) < 0.3
    logits = rng.normal(size=(3000, 2)).astype(np.float32) * 3
    edges = np.linspace(-4, 4, 33).astype(np.float32)
    logits[:5, 0] = edges[:5]  # on the edges
    logits[5:10, 1] = -9.0  # below the first edge: invalid
    scatter, by_sort = _both_histograms(
        y_true, logits, None, jit=True, edges=edges, from_logits=True
    )
    np.testing.assert_array_equal(by_sort[0], scatter[0])
    np.testing.assert_array_equal(by_sort[1], scatter[1])


def test_histogram_method_is_checked():
    y_true, y_pred = np.array([[1, 0]]), np.float32([[0.2, 0.7]])
    with pytest.raises(ValueError, match="histogram_method must be one of"):
        vm.score_histogram(y_true, y_pred, 4, histogram_method="radix")
    with pytest.raises(ValueError, match="sample weights"):
        vm.score_histogram(
            y_true, y_pred, 4, histogram_method="sort", sample_weight=np.float32([2.0])
        )


def test_sorted_histogram_large_counts_are_exact(rng):
    n = 300_000
    y_true = np.ones((n, 1), bool)
    y_pred = np.full((n, 1), 0.75, np.float32)
    y_pred[:3] = 1.0
    (scatter, _), (by_sort, _) = _both_histograms(y_true, y_pred, 4, jit=True)
    np.testing.assert_array_equal(by_sort, scatter)
    assert by_sort[0, 3].tolist() == [0, n]
    assert ops.convert_to_numpy(ops.sum(by_sort)) == n


# ----------------------------------------------------------------------------- run_starts


@pytest.mark.parametrize("size", [0, 1, 2, 9, 500])
def test_run_starts_fast_and_generic_equal_numpy(rng, size):
    keys = np.sort(rng.integers(0, max(size // 3, 1), (3, size)), axis=1).astype(np.int32)
    if size:
        keys[1] = keys[1, 0]  # one row is a single run
    expected = np.stack([np.searchsorted(row, row, side="left") for row in keys]).reshape(3, size)
    for fn in (_sorting.run_starts, _sorting.generic_run_starts):
        np.testing.assert_array_equal(to_numpy(fn(keys)), expected)
        np.testing.assert_array_equal(to_numpy(compiled(fn)(keys)), expected)
