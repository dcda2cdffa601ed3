"""Per-case statistics, as segmentation challenges report them: spread and a bootstrap CI.

Pure numpy float64 on the host: the inputs are a few numbers per case and class.
"""

from collections.abc import Sequence

import numpy as np

CONFIDENCE = 0.95
DEFAULT_BOOTSTRAP = 1000
NAN = float("nan")


def bootstrap_mean_interval(
    values: np.ndarray,
    *,
    resamples: int = DEFAULT_BOOTSTRAP,
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
    resamples: int = DEFAULT_BOOTSTRAP,
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
    if int(resamples) != resamples or resamples < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(
            f"expected resamples >= 1 and 0 < confidence < 1; got {resamples!r}, {confidence!r}"
        )
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
    (a missed structure's distance: no interpolation with inf)."""
    with np.errstate(invalid="ignore"):
        low, high = np.quantile(means, [tail, 1.0 - tail], axis=-1)
    infinite = ~np.all(np.isfinite(means), axis=-1)
    if infinite.any():
        low[infinite] = np.quantile(means[infinite], tail, axis=-1, method="lower")
        high[infinite] = np.quantile(means[infinite], 1.0 - tail, axis=-1, method="higher")
    return low, high


def _sample_std(values: np.ndarray) -> float:
    """ddof=1 standard deviation; NaN below two values or when one is infinite (a missed
    structure's distance)."""
    if values.size < 2 or not np.all(np.isfinite(values)):
        return NAN
    return float(values.std(ddof=1))


def case_statistics(
    values: np.ndarray,
    case_names: Sequence[str],
    *,
    bootstrap: int = DEFAULT_BOOTSTRAP,
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
        `median`, `q25`, `q75` (linear interpolation, numpy's default), `min`, `min_case`,
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
    bootstrap: int = DEFAULT_BOOTSTRAP,
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
    if int(bootstrap) != bootstrap or bootstrap < 0:
        raise ValueError(f"expected a number of bootstrap resamples >= 0; got {bootstrap!r}")
    values = np.asarray(values, np.float64)
    if values.ndim != 2 or values.shape[1] != len(case_names):
        raise ValueError(
            f"expected one value per case ({len(case_names)}), got an array of shape {values.shape}"
        )
    kept = [row[~np.isnan(row)] for row in values]
    rows = [_spread(row, case_names) for row in values]
    if bootstrap > 0:
        low, high = bootstrap_mean_intervals(kept, resamples=bootstrap, seed=seed)
        for row, lo, hi in zip(rows, low, high, strict=True):
            row["ci_low"], row["ci_high"] = float(lo), float(hi)
    return rows


def _spread(values: np.ndarray, case_names: Sequence[str]) -> dict:
    """Every statistic of `case_statistics` but the bootstrap, of one `[n_cases]` row."""
    defined = ~np.isnan(values)
    kept = values[defined]
    names = [name for name, ok in zip(case_names, defined, strict=True) if ok]
    stats = {"n_defined": int(kept.size), "n_cases": int(values.size)}
    if kept.size == 0:
        stats |= dict.fromkeys(("mean", "std", "median", "q25", "q75", "min", "max"), NAN)
        return stats | {"min_case": None, "max_case": None}
    q25, median, q75 = np.quantile(kept, [0.25, 0.5, 0.75])
    return stats | {
        "mean": float(kept.mean()),
        "std": _sample_std(kept),
        "median": float(median),
        "q25": float(q25),
        "q75": float(q75),
        "min": float(kept.min()),
        "min_case": names[int(kept.argmin())],
        "max": float(kept.max()),
        "max_case": names[int(kept.argmax())],
    }
