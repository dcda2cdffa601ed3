"""Per-case statistics, as segmentation challenges report them: spread and a bootstrap CI.

Pure numpy float64 on the host: the inputs are a few numbers per case and class.
"""

from collections.abc import Sequence

import numpy as np

from voxelmetrics._scalar_checks import check_int
from voxelmetrics.defaults import BOOTSTRAP

CONFIDENCE = 0.95
NAN = float("nan")


def bootstrap_mean_interval(
    values: np.ndarray,
    *,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[float, float]:
    r"""Percentile-bootstrap confidence interval of the mean of `values`.

    Draws `resamples` samples of `n = len(values)` cases with replacement, takes each
    sample's mean :math:`\bar x^*_b`, and returns the :math:`(1 - \gamma) / 2` and
    :math:`(1 + \gamma) / 2` quantiles of :math:`\{\bar x^*_b\}` (linear interpolation),
    :math:`\gamma` = `confidence` (Efron & Tibshirani 1993, ch. 13).

    Args:
        values: `[n]` finite values, one per case (undefined cases already removed).
        resamples: number of bootstrap samples B >= 1.
        seed: seeds numpy's default generator, so the interval is reproducible.
        confidence: the interval's nominal coverage, in (0, 1).

    Returns:
        `(low, high)`; `(nan, nan)` when `values` is empty.

    Example:
        >>> bootstrap_mean_interval(np.array([0.8, 0.8, 0.8]))
        (0.8, 0.8)
    """
    low, high = bootstrap_mean_intervals(
        [values], resamples=resamples, seed=seed, confidence=confidence
    )
    return float(low[0]), float(high[0])


MAX_GATHER = 2**22  # resampled values held at once: samples x resamples x cases


def bootstrap_mean_intervals(
    samples: Sequence[np.ndarray],
    *,
    resamples: int = BOOTSTRAP,
    seed: int = 0,
    confidence: float = CONFIDENCE,
) -> tuple[np.ndarray, np.ndarray]:
    """`bootstrap_mean_interval` of each of S samples, vectorised: `(low [S], high [S])`.

    Every sample of n values is resampled with the one index matrix `[resamples, n]` that
    `default_rng(seed)` draws for n (what each would draw alone), so samples of equal
    size share one draw and one quantile call.

    Example:
        >>> low, high = bootstrap_mean_intervals([np.ones(3), np.array([]), np.zeros(3)])
        >>> low.tolist(), high.tolist()
        ([1.0, nan, 0.0], [1.0, nan, 0.0])
    """
    check_int("resamples", resamples)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"expected 0 < confidence < 1; got {confidence!r}")
    samples = [np.asarray(v, np.float64) for v in samples]
    low, high = np.full(len(samples), NAN), np.full(len(samples), NAN)
    tail = (1.0 - confidence) / 2.0
    for n in {v.size for v in samples} - {0}:
        rows = [i for i, v in enumerate(samples) if v.size == n]
        draws = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
        step = max(1, MAX_GATHER // (resamples * n))
        for start in range(0, len(rows), step):
            chunk = rows[start : start + step]
            means = np.stack([samples[i] for i in chunk])[:, draws].mean(axis=-1)
            low[chunk], high[chunk] = _percentiles(means, tail)
    return low, high


def _percentiles(means: np.ndarray, tail: float) -> tuple[np.ndarray, np.ndarray]:
    """The `tail` and `1 - tail` quantiles of each row of `means` `[S, B]`: linear
    interpolation, or the nearest order statistic outward in a row holding an infinite mean
    (a missed structure's distance: no interpolation with inf).

    Not `quantiles`: in such a row that one interpolates between two finite neighbours and
    gives inf between a finite one and inf; this interval takes the lower order statistic
    at its low end and the higher at its high end, so the numbers differ.
    """
    with np.errstate(invalid="ignore"):
        low, high = np.quantile(means, [tail, 1.0 - tail], axis=-1)
    infinite = ~np.all(np.isfinite(means), axis=-1)
    if infinite.any():
        low[infinite] = np.quantile(means[infinite], tail, axis=-1, method="lower")
        high[infinite] = np.quantile(means[infinite], 1.0 - tail, axis=-1, method="higher")
    return low, high


def quantiles(values: np.ndarray, q: Sequence[float]) -> np.ndarray:
    r"""Quantiles of each row of `values` `[..., k]` (no NaN): numpy's linear interpolation,
    exact where an order statistic is infinite (a missed structure's distance).

    With the row sorted, $x_{(0)} \le \dots \le x_{(k-1)}$, $h = (k - 1) q$, $j = \lfloor h
    \rfloor$, $g = h - j$: the quantile is $x_{(j)} + g (x_{(j+1)} - x_{(j)})$, numpy's default.
    numpy evaluates that literally, so `inf - inf` makes it NaN wherever an infinite value
    takes part (`np.quantile([0, 0, inf, inf], 0.5)` is NaN). Here instead: $g = 0$ gives
    $x_{(j)}$ itself; two equal neighbours give their value (inf between inf and inf); a
    finite and an infinite neighbour with $0 < g$ give the infinite one (the line towards inf
    is inf at every inner point). Only -inf next to +inf stays NaN. Finite rows equal numpy.

    Args:
        values: `[..., k]`, k >= 1, float64, finite or infinite.
        q: the quantiles, each in [0, 1].

    Returns:
        `[len(q), ...]` float64.

    Example:
        >>> quantiles(np.array([0.0, 0.0, np.inf, np.inf]), [0.25, 0.5, 0.75]).tolist()
        [0.0, inf, inf]
    """
    values = np.asarray(values, np.float64)
    q = np.asarray(q, np.float64)
    with np.errstate(invalid="ignore"):
        linear = np.quantile(values, q, axis=-1)
    low = np.quantile(values, q, axis=-1, method="lower")
    high = np.quantile(values, q, axis=-1, method="higher")
    h = (values.shape[-1] - 1) * q.reshape((-1,) + (1,) * (values.ndim - 1))
    exact = (h == np.floor(h)) | (low == high)
    one_infinite = np.isinf(low) != np.isinf(high)
    out = np.where(one_infinite, np.where(np.isinf(low), low, high), linear)
    return np.where(exact, low, out)


def case_statistics(
    values: np.ndarray,
    case_names: Sequence[str],
    *,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> dict:
    """Spread over cases of one score: mean, sd, median, quartiles, extremes, bootstrap CI.

    Cases where the score is undefined (NaN: e.g. Dice of a class absent from both truth
    and prediction under `zero_division="nan"`) are left out of every statistic and
    counted apart (`n_defined` of `n_cases`).

    Args:
        values: `[n_cases]` the score per case (NaN where undefined).
        case_names: `[n_cases]` names, to say which case gives the minimum and maximum.
        bootstrap: resamples of the 95% percentile-bootstrap interval of the mean
            (`bootstrap_mean_interval`); 0 leaves `ci_low`/`ci_high` out.
        seed: the bootstrap's seed.

    Returns:
        A dict: `mean`, `std` (sample standard deviation, ddof=1; NaN below two cases),
        `median`, `q25`, `q75` (linear interpolation, numpy's default, exact for inf:
        `quantiles`), `min`, `min_case`,
        `max`, `max_case`, `n_defined`, `n_cases`, and `ci_low`, `ci_high` when
        `bootstrap > 0`. Statistics of no defined case are NaN (cases None).

    Example:
        >>> s = case_statistics(np.array([0.9, np.nan, 0.7]), ["a", "b", "c"], bootstrap=0)
        >>> s["mean"], s["n_defined"], s["min_case"]
        (0.8, 2, 'c')
    """
    values = np.asarray(values, np.float64)[None]
    return case_statistics_table(values, case_names, bootstrap=bootstrap, seed=seed)[0]


def case_statistics_table(
    values: np.ndarray,
    case_names: Sequence[str],
    *,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> list[dict]:
    """`case_statistics` of each row of `values` `[S, n_cases]` (say every class and metric
    of a report), the bootstrap intervals of all rows at once (`bootstrap_mean_intervals`:
    the same seeded draws, hence the same intervals, as row by row).

    Example:
        >>> rows = case_statistics_table(np.array([[0.9, 0.7], [np.nan, 0.5]]), ["a", "b"])
        >>> [(r["mean"], r["n_defined"], r["ci_high"]) for r in rows]
        [(0.8, 2, 0.9), (0.5, 1, 0.5)]
    """
    check_int("bootstrap resamples", bootstrap, minimum=0)
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.shape[1] != len(case_names):
        raise ValueError(
            f"expected one value per case ({len(case_names)}), got an array of shape {values.shape}"
        )
    kept = [row[~np.isnan(row)] for row in values]
    rows = _spreads(values, case_names)
    if bootstrap > 0:
        low, high = bootstrap_mean_intervals(kept, resamples=bootstrap, seed=seed)
        for row, lo, hi in zip(rows, low, high, strict=True):
            row["ci_low"], row["ci_high"] = float(lo), float(hi)
    return rows


def _spreads(values: np.ndarray, case_names: Sequence[str]) -> list[dict]:
    """Every statistic of `case_statistics` but the bootstrap, of each row of `values`
    `[S, n_cases]`. Rows with the same number k of defined cases are computed together on
    their `[G, k]` defined values (kept in case order): the same numpy reductions as one
    row alone, one call per k. The extremes name the first case that gives them."""
    defined = ~np.isnan(values)
    sizes = defined.sum(axis=1)
    rows = [{"n_defined": int(k), "n_cases": values.shape[1]} for k in sizes]
    for k in np.unique(sizes):
        group = np.flatnonzero(sizes == k)
        if k == 0:
            for r in group:
                rows[r] |= dict.fromkeys(("mean", "std", "median", "q25", "q75", "min", "max"), NAN)
                rows[r] |= {"min_case": None, "max_case": None}
            continue
        kept = values[group][defined[group]].reshape(len(group), k)
        cases = np.nonzero(defined[group])[1].reshape(len(group), k)
        q25, median, q75 = quantiles(kept, [0.25, 0.5, 0.75])
        with np.errstate(invalid="ignore"):  # inf - inf of a missed structure's distance
            std = kept.std(ddof=1, axis=1) if k > 1 else np.full(len(group), NAN)
        # ddof=1: NaN below two values, or with an infinite one (a missed structure).
        std = np.where(np.all(np.isfinite(kept), axis=1), std, NAN)
        low, high = kept.argmin(axis=1), kept.argmax(axis=1)
        columns = {
            "mean": kept.mean(axis=1),
            "std": std,
            "median": median,
            "q25": q25,
            "q75": q75,
            "min": kept.min(axis=1),
            "max": kept.max(axis=1),
        }
        for i, r in enumerate(group):
            rows[r] |= {name: float(column[i]) for name, column in columns.items()}
            rows[r]["min_case"] = case_names[cases[i, low[i]]]
            rows[r]["max_case"] = case_names[cases[i, high[i]]]
    return [_in_order(row) for row in rows]


_ORDER = ("n_defined", "n_cases", "mean", "std", "median", "q25", "q75", "min", "min_case")
_ORDER += ("max", "max_case")


def _in_order(row: dict) -> dict:
    return {key: row[key] for key in _ORDER}
