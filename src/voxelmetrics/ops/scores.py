"""Scores from confusion counts, with one empty-class policy and one averaging rule.

Every score here is a function of `tp, fp, fn, tn`; `zero_division` decides what an
undefined ratio (0 / 0) becomes, and `average` how classes are combined. The array
functions come from `_host.xp`: `keras.ops`, or numpy float64 for the offline report.
"""

from collections.abc import Callable
from typing import Literal

from voxelmetrics._docs import fill
from voxelmetrics.defaults import ZERO_DIVISION
from voxelmetrics.ops._host import xp
from voxelmetrics.ops._options import check_average, check_number, zero_division_value

Average = Literal["none", "micro", "macro", "weighted"] | None
ZeroDivision = Literal["nan"] | float


def safe_ratio(numerator, denominator, zero_division: ZeroDivision = ZERO_DIVISION):
    r"""$n / d$ where $d \ne 0$, else the `zero_division` value (float32, elementwise;
    float64 inside `_host.on_host()`, as every formula of this module)."""
    num = xp.cast(numerator, "float32")
    den = xp.cast(denominator, "float32")
    defined = xp.not_equal(den, 0.0)
    fill = zero_division_value(zero_division)
    return xp.where(defined, num / xp.where(defined, den, 1.0), fill)


def class_weight_vector(support, class_weights=None):
    r"""Per-class weights for average="weighted".

    None weighs by support; an array is used as given; "inverse_frequency" is
    $w_c = 1 / support_c$ (0 for a class with no support), computed from the counts, in-graph.
    """
    support = xp.cast(support, "float32")
    if class_weights is None:
        return support
    if isinstance(class_weights, str):
        return safe_ratio(xp.ones_like(support), support, 0)
    weights = xp.cast(class_weights, "float32")
    if tuple(xp.shape(weights)) != tuple(xp.shape(support))[-1:]:
        raise ValueError(
            f"class_weights has shape {tuple(xp.shape(weights))}; expected one weight per "
            f"class, {tuple(xp.shape(support))[-1:]}."
        )
    return xp.broadcast_to(weights, xp.shape(support))


def average_scores(values, support, *, average: Average = None, class_weights=None):
    r"""Combine per-class scores `[..., C]`; NaN classes are skipped by macro and weighted.

    macro: $\frac{1}{|V|}\sum_{c \in V} s_c$ over the valid (non-NaN) classes V;
    weighted: $\sum_{c \in V} w_c s_c / \sum_{c \in V} w_c$ with `class_weight_vector`.
    None/"none" returns `values` unchanged. ("micro" pools counts and is done by the caller.)

    Where the valid classes' weights sum to 0 (no class has support, or inverse frequencies
    of empty classes), weighted falls back to the macro mean, as scikit-learn does: the
    `zero_division` value the per-class scores already carry decides the result (1.0 for
    `precision` of all-empty classes with `zero_division=1`, not NaN). NaN only where no
    class is valid.
    """
    check_average(average, class_weights)
    if average in (None, "none"):
        return values
    valid = xp.logical_not(xp.isnan(values))
    clean = xp.where(valid, values, 0.0)
    count = xp.cast(valid, "float32")
    macro = safe_ratio(xp.sum(count * clean, axis=-1), xp.sum(count, axis=-1))
    if average == "macro":
        return macro
    weights = xp.where(valid, class_weight_vector(support, class_weights), 0.0)
    total = xp.sum(weights, axis=-1)
    weighted = safe_ratio(xp.sum(weights * clean, axis=-1), total)
    return xp.where(xp.equal(total, 0.0), macro, weighted)


def num_valid_classes(values):
    """How many classes of `[..., C]` scores are defined (not NaN): what macro averaged over."""
    return xp.sum(xp.cast(xp.logical_not(xp.isnan(values)), "int32"), axis=-1)


def _unstack(counts):
    counts = xp.cast(counts, "float32")
    return counts[..., 0], counts[..., 1], counts[..., 2], counts[..., 3]


def _score(
    formula: Callable,
    counts,
    average: Average,
    class_weights,
    zero_division: ZeroDivision,
):
    """Apply `formula(tp, fp, fn, tn, zero_division)` to `[..., C, 4]` counts and average."""
    check_average(average, class_weights)
    zero_division_value(zero_division)
    if average == "micro":
        return formula(*_unstack(xp.sum(xp.cast(counts, "float32"), axis=-2)), zero_division)
    tp, fp, fn, tn = _unstack(counts)
    values = formula(tp, fp, fn, tn, zero_division)
    return average_scores(values, tp + fn, average=average, class_weights=class_weights)


_DOC = """{name} from confusion counts: ${formula}$.

    Args:
        counts: `[..., C, 4]` counts, columns `tp, fp, fn, tn` (any numeric dtype).
        average: None/"none" per class `[..., C]`; "micro" pools the counts of all classes;
            "macro" the mean over classes whose score is defined (NaN classes skipped);
            "weighted" the mean weighted by support, `class_weights`, or
            `class_weights="inverse_frequency"` (1 / support, from the counts).
        class_weights: per-class weights `[C]` or "inverse_frequency"; average="weighted" only.
        zero_division: what an undefined ratio (0 / 0) gives: "nan" (default), 0 or 1.

    Returns:
        float32 `[..., C]` (per class) or `[...]` (averaged).

    Example:
        >>> import numpy as np
        >>> counts = np.array([[8, 2, 2, 88], [0, 0, 0, 100]])  # class 1 is empty
        {example}
    """


def _doc(name: str, formula: str, example: str):
    """The score ops' one docstring (`_DOC`), completed for one score."""

    def decorate(fn):
        fn.__doc__ = fill(_DOC, name=name, formula=formula, example=example)
        return fn

    return decorate


@_doc(
    "Recall (sensitivity, TPR)",
    r"tp / (tp + fn)",
    ">>> np.asarray(recall(counts)).round(3).tolist()\n        [0.8, nan]",
)
def recall(counts, *, average: Average = None, class_weights=None, zero_division=ZERO_DIVISION):
    return _score(
        lambda tp, fp, fn, tn, z: safe_ratio(tp, tp + fn, z),
        counts,
        average,
        class_weights,
        zero_division,
    )


@_doc(
    "Precision (PPV)",
    r"tp / (tp + fp)",
    ">>> float(precision(counts, average='macro'))\n        0.8",
)
def precision(counts, *, average: Average = None, class_weights=None, zero_division=ZERO_DIVISION):
    return _score(
        lambda tp, fp, fn, tn, z: safe_ratio(tp, tp + fp, z),
        counts,
        average,
        class_weights,
        zero_division,
    )


@_doc(
    "Specificity (TNR)",
    r"tn / (tn + fp)",
    ">>> np.asarray(specificity(counts)).round(3).tolist()\n        [0.978, 1.0]",
)
def specificity(
    counts, *, average: Average = None, class_weights=None, zero_division=ZERO_DIVISION
):
    return _score(
        lambda tp, fp, fn, tn, z: safe_ratio(tn, tn + fp, z),
        counts,
        average,
        class_weights,
        zero_division,
    )


@_doc(
    "Dice (F1)",
    r"2\,tp / (2\,tp + fp + fn)",
    ">>> np.asarray(dice(counts, zero_division=1)).round(3).tolist()\n        [0.8, 1.0]",
)
def dice(counts, *, average: Average = None, class_weights=None, zero_division=ZERO_DIVISION):
    return _score(
        lambda tp, fp, fn, tn, z: safe_ratio(2 * tp, 2 * tp + fp + fn, z),
        counts,
        average,
        class_weights,
        zero_division,
    )


@_doc(
    "IoU (Jaccard)",
    r"tp / (tp + fp + fn)",
    ">>> np.asarray(iou(counts)).round(3).tolist()\n        [0.667, nan]",
)
def iou(counts, *, average: Average = None, class_weights=None, zero_division=ZERO_DIVISION):
    return _score(
        lambda tp, fp, fn, tn, z: safe_ratio(tp, tp + fp + fn, z),
        counts,
        average,
        class_weights,
        zero_division,
    )


def fbeta_score(
    counts,
    *,
    beta: float = 1.0,
    average: Average = None,
    class_weights=None,
    zero_division=ZERO_DIVISION,
):
    r"""F-beta from confusion counts: $(1+\beta^2)\,tp / ((1+\beta^2)\,tp + \beta^2 fn + fp)$.

    $\beta > 1$ weighs recall higher, $\beta < 1$ precision; $\beta = 1$ is Dice / F1.

    Args:
        counts: `[..., C, 4]` counts, columns `tp, fp, fn, tn`.
        beta: $\beta > 0$.
        average, class_weights, zero_division: as in `recall`.

    Returns:
        float32 `[..., C]` or `[...]` averaged.

    Example:
        >>> import numpy as np
        >>> counts = np.array([[8, 2, 2, 88]])
        >>> round(float(fbeta_score(counts, beta=2.0)[0]), 3)
        0.8
    """
    b2 = check_number("beta", beta, positive=True) ** 2

    def formula(tp, fp, fn, tn, z):
        return safe_ratio((1 + b2) * tp, (1 + b2) * tp + b2 * fn + fp, z)

    return _score(formula, counts, average, class_weights, zero_division)


@_doc(
    "Balanced accuracy",
    r"(tp / (tp + fn) + tn / (tn + fp)) / 2",
    ">>> np.asarray(balanced_accuracy(counts)).round(3).tolist()\n        [0.889, nan]",
)
def balanced_accuracy(
    counts, *, average: Average = None, class_weights=None, zero_division=ZERO_DIVISION
):
    def formula(tp, fp, fn, tn, z):
        value = 0.5 * (safe_ratio(tp, tp + fn) + safe_ratio(tn, tn + fp))
        return xp.where(xp.isnan(value), zero_division_value(z), value)

    return _score(formula, counts, average, class_weights, zero_division)


@_doc(
    "Matthews correlation coefficient",
    r"(tp\,tn - fp\,fn) / \sqrt{(tp+fp)(tp+fn)(tn+fp)(tn+fn)}",
    ">>> np.asarray(matthews_corrcoef(counts)).round(3).tolist()\n        [0.778, nan]",
)
def matthews_corrcoef(
    counts, *, average: Average = None, class_weights=None, zero_division=ZERO_DIVISION
):
    def formula(tp, fp, fn, tn, z):
        # Rates rather than counts: the four-way product of raw counts overflows float32.
        n = xp.maximum(tp + fp + fn + tn, 1.0)
        tp, fp, fn, tn = tp / n, fp / n, fn / n, tn / n
        den = xp.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
        return safe_ratio(tp * tn - fp * fn, den, z)

    return _score(formula, counts, average, class_weights, zero_division)
