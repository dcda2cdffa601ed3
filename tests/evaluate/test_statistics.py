"""Per-case statistics against Python's `statistics` module and bootstrap properties."""

import statistics as py_stats

import numpy as np
import pytest

from voxelmetrics.evaluate.statistics import (
    bootstrap_mean_interval,
    case_statistics,
    case_statistics_table,
    quantiles,
)


def test_spread_matches_python_statistics_and_skips_undefined_cases():
    rng = np.random.default_rng(3)
    values = rng.random(41)
    values[[4, 17]] = np.nan
    names = [f"case{i:02d}" for i in range(41)]
    kept = [float(v) for v in values if not np.isnan(v)]
    s = case_statistics(values, names, bootstrap=0)
    q25, median, q75 = py_stats.quantiles(kept, n=4, method="inclusive")
    assert s["n_defined"] == 39 and s["n_cases"] == 41
    assert s["mean"] == pytest.approx(py_stats.fmean(kept), abs=1e-12)
    assert s["std"] == pytest.approx(py_stats.stdev(kept), abs=1e-12)
    assert (s["q25"], s["median"], s["q75"]) == pytest.approx((q25, median, q75), abs=1e-12)
    assert s["min"] == min(kept) and s["min_case"] == names[int(np.nanargmin(values))]
    assert s["max"] == max(kept) and s["max_case"] == names[int(np.nanargmax(values))]
    assert "ci_low" not in s


def test_adversarial_case_counts():
    none = case_statistics(np.array([np.nan, np.nan]), ["a", "b"])
    assert none["n_defined"] == 0 and none["min_case"] is None
    assert np.isnan(none["mean"]) and np.isnan(none["ci_low"]) and np.isnan(none["ci_high"])
    one = case_statistics(np.array([0.25]), ["only"])
    assert one["mean"] == one["median"] == one["ci_low"] == one["ci_high"] == 0.25
    assert np.isnan(one["std"])
    with pytest.raises(ValueError, match="one value per case"):
        case_statistics(np.zeros(3), ["a", "b"])
    with pytest.raises(ValueError, match="bootstrap resamples must be an integer >= 0"):
        case_statistics(np.zeros(2), ["a", "b"], bootstrap=-1)


def test_bootstrap_interval_is_seeded_and_about_the_normal_width():
    rng = np.random.default_rng(0)
    values = rng.normal(0.8, 0.1, size=400)
    low, high = bootstrap_mean_interval(values, resamples=2000, seed=7)
    assert (low, high) == bootstrap_mean_interval(values, resamples=2000, seed=7)
    assert (low, high) != bootstrap_mean_interval(values, resamples=2000, seed=8)
    assert low < values.mean() < high
    normal_half_width = 1.96 * values.std(ddof=1) / np.sqrt(values.size)
    assert (high - low) / 2 == pytest.approx(normal_half_width, rel=0.15)


def test_bootstrap_interval_by_brute_force():
    """All 3**3 resamples of 3 cases: the exact bootstrap distribution of the mean.

    The mean is 0 in 1/27 = 3.7% of resamples (all three draws the 0.0 case), more than the
    2.5% tail, so the exact interval is [0, 1]; a large bootstrap must find it exactly.
    """
    values = np.array([0.0, 0.5, 1.0])
    grid = np.stack(np.meshgrid(*[range(3)] * 3, indexing="ij"), -1).reshape(-1, 3)
    exact = values[grid].mean(axis=1)
    assert np.mean(exact == 0.0) > 0.025 and np.mean(exact == 1.0) > 0.025
    assert bootstrap_mean_interval(values, resamples=100_000, seed=1) == (0.0, 1.0)
    narrow = bootstrap_mean_interval(values, resamples=100_000, seed=1, confidence=0.5)
    assert narrow == (np.quantile(exact, 0.25), np.quantile(exact, 0.75))


def test_infinite_values_keep_their_meaning():
    """A missed structure's Hausdorff distance is inf: the mean and the upper CI bound are
    inf, the spread undefined, and nothing turns into NaN silently."""
    values = np.array([1.0, 2.0, np.inf, 3.0])
    s = case_statistics(values, ["a", "b", "c", "d"], bootstrap=500)
    assert s["mean"] == np.inf and s["max"] == np.inf and s["max_case"] == "c"
    assert s["min"] == 1.0 and s["n_defined"] == 4 and np.isnan(s["std"])
    # A resample misses case c with probability (3/4)**4 = 0.32 > 2.5%: a finite low end.
    assert s["ci_high"] == np.inf and np.isfinite(s["ci_low"])


def test_order_statistics_of_infinite_values_are_inf_not_null():
    """Issue 21 fault 10: HD95 of [0, 0, inf, inf] has median and q75 inf (numpy: NaN, from
    inf - inf in its interpolation), and two missed structures have every quartile inf."""
    s = case_statistics(np.array([0.0, 0.0, np.inf, np.inf]), list("abcd"), bootstrap=0)
    assert (s["q25"], s["median"], s["q75"]) == (0.0, np.inf, np.inf)
    s = case_statistics(np.array([np.inf, np.nan, np.inf]), list("abc"), bootstrap=0)
    assert (s["q25"], s["median"], s["q75"]) == (np.inf, np.inf, np.inf) and s["n_defined"] == 2
    assert quantiles(np.array([0.0, 1.0, np.inf]), [0.5, 0.75]).tolist() == [1.0, np.inf]
    assert np.isnan(quantiles(np.array([-np.inf, np.inf]), [0.5])).all()  # no rule for that


@pytest.mark.parametrize("k", [1, 2, 3, 4, 5, 8])
def test_quantiles_equal_numpy_with_inf_as_a_huge_number(rng, k):
    """The rule against numpy on a stand-in: inf replaced by 1e200 (far above every finite
    value), numpy's interpolation is huge exactly where inf takes part with a positive
    weight; there the quantile is inf, elsewhere numpy's value itself (finite rows: equal)."""
    q = [0.0, 0.1, 0.25, 0.5, 0.75, 0.9, 1.0]
    values = rng.random((200, k))
    values[rng.random(values.shape) < 0.3] = np.inf
    values[:20] = rng.random((20, k))  # all finite
    values[20:30] = np.inf  # all infinite
    got = quantiles(values, q)
    stand_in = np.quantile(np.where(np.isinf(values), 1e200, values), q, axis=-1)
    expected = np.where(stand_in > 1e100, np.inf, stand_in)
    np.testing.assert_array_equal(got, expected)
    np.testing.assert_array_equal(got[:, :20], np.quantile(values[:20], q, axis=-1))
    rows = case_statistics_table(values, [f"c{i}" for i in range(k)], bootstrap=0)
    medians = [row["median"] for row in rows]
    np.testing.assert_array_equal(medians, expected[q.index(0.5)])


def test_the_vectorised_table_equals_case_statistics_row_by_row(rng):
    values = rng.random((6, 5))
    values[1, [0, 3]] = np.nan  # rows with fewer defined cases draw their own indices
    values[2] = np.nan
    values[3, 2] = np.inf  # a missed structure's distance: outward order statistics
    values[4, :4] = np.nan
    names = list("abcde")
    table = case_statistics_table(values, names, bootstrap=300, seed=3)
    for row, stats in zip(values, table, strict=True):
        expected = case_statistics(row, names, bootstrap=300, seed=3)
        assert stats.keys() == expected.keys()
        for key, value in expected.items():
            assert stats[key] == value or (np.isnan(stats[key]) and np.isnan(value)), key
    assert table[3]["ci_high"] == np.inf and np.isfinite(table[3]["ci_low"])
    for r in (0, 1):  # the seeded draw of each size, as one row alone would make it
        kept = values[r][~np.isnan(values[r])]
        draws = np.random.default_rng(3).integers(0, kept.size, (300, kept.size))
        tail = (1 - 0.95) / 2  # as computed there: not quite 0.025
        low, high = np.quantile(kept[draws].mean(axis=1), [tail, 1 - tail])
        assert (table[r]["ci_low"], table[r]["ci_high"]) == (low, high)
    assert table[0]["ci_low"] < table[0]["mean"] < table[0]["ci_high"]
