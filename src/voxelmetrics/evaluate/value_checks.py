"""Host checks of a slab's values before it is counted: scores that are numbers (in [0, 1]
without logits), labels that are 0/1 or class ids; each error names the file, the first bad
voxel in file coordinates and what to do.
"""

import numpy as np

from voxelmetrics.evaluate.planning import MAX_INFERRED_CLASSES
from voxelmetrics.evaluate.readers import InputError


def _first(flags: np.ndarray, offset: int, axis: int) -> tuple[int, ...]:
    index = list(np.unravel_index(int(np.argmax(flags)), flags.shape))
    index[axis] += offset
    return tuple(int(i) for i in index)


def check_scores(scores: np.ndarray, *, from_logits: bool, path: str, offset: int, axis: int):
    """Raise `InputError` on NaN scores, or probabilities outside [0, 1] without logits.

    Two reductions (min, max; NaN propagates through both) on the happy path; the
    diagnosis with counts and the first index (in file coordinates) only on failure.
    """
    low, high = scores.min(), scores.max()
    if not (np.isnan(low) or np.isnan(high)) and (from_logits or (low >= 0 and high <= 1)):
        return
    nan = np.isnan(scores)
    if nan.any():
        raise InputError(
            path,
            f"holds NaN scores, the first at index {_first(nan, offset, axis)}; every score "
            f"must be a number.",
        )
    outside = (scores < 0) | (scores > 1)
    if scores.dtype.kind in "biu":
        advice = (
            "integer values look like a label map: pass --pred-kind labels (or are PRED and "
            "TRUE swapped? predictions come first)"
        )
    elif low >= 0 and np.array_equal(scores, np.floor(scores)):  # whole floats: label ids
        advice = (
            f"whole numbers from 0 to {high:.6g} look like a label map stored as {scores.dtype}: "
            f"pass --pred-kind labels (--from-logits if these are logits)"
        )
    else:
        advice = "pass --from-logits if these are logits"
    raise InputError(
        path,
        f"holds scores outside [0, 1], the first at index {_first(outside, offset, axis)} "
        f"(e.g. {scores[outside].flat[0]:.6g}); {advice}.",
    )


def check_labels(
    labels: np.ndarray,
    *,
    sparse: bool,
    num_classes: int,
    ignore_index: int | None,
    path: str,
    offset: int,
    axis: int,
    ignorable: bool = True,
):
    """Raise `InputError` unless multi-hot labels are 0/1 and sparse ids lie in `[0, C)`.

    `ignorable`: `--ignore-index` applies to these labels (the truth's, not a predicted
    label map's), so a negative id gets that advice.
    """
    if labels.dtype == bool:
        return
    low, high = labels.min(), labels.max()
    integral = labels.dtype.kind in "iu" or np.array_equal(labels, np.floor(labels))
    top = num_classes - 1 if sparse else 1
    if integral and low >= 0 and high <= top:
        return
    if not integral:
        bad = labels != np.floor(labels)
        raise InputError(
            path,
            f"holds non-integer labels (e.g. {labels[bad].flat[0]} at index "
            f"{_first(bad, offset, axis)}); expected {'class ids' if sparse else '0 and 1'}. "
            f"If these are scores, PRED and TRUE are swapped: predictions come first.",
        )
    bad = (labels < 0) | (labels > top)
    if ignore_index is not None and sparse:
        bad &= labels != ignore_index
        if not bad.any():
            return
    what = f"class ids in [0, {num_classes})" if sparse else "multi-hot labels of 0 and 1"
    advice = negative_ids_advice(labels[bad & (labels < 0)], ignorable) if sparse else ""
    raise InputError(
        path,
        f"holds {int(bad.sum())} label(s) that are not {what} (e.g. {labels[bad].flat[0]} at "
        f"index {_first(bad, offset, axis)}); the prediction has {num_classes} classes"
        f"{'; ' + advice if advice else ''}.",
    )


def negative_ids_advice(negative: np.ndarray, ignorable: bool) -> str:
    """What to do about the negative ids of a label map ("" when there are none): the
    truth's may be skipped with `--ignore-index`, a prediction holds class ids only.

    Example:
        >>> negative_ids_advice(np.array([-1, -1]), ignorable=True)
        'a negative id is no class: pass --ignore-index -1 to skip its voxels'
    """
    if not negative.size:
        return ""
    if ignorable:
        return (
            f"a negative id is no class: pass --ignore-index {negative.flat[0]} to skip its voxels"
        )
    return "a predicted label map holds class ids only (--ignore-index skips truth voxels)"


def check_truth(slab, spec) -> None:
    """`check_labels` on the truth of a streamed slab (`streaming._Slab`), per `spec`."""
    check_labels(
        slab.true,
        sparse=spec.sparse,
        num_classes=spec.num_classes,
        ignore_index=spec.ignore_index,
        path=slab.true_path,
        offset=slab.start,
        axis=slab.true_axis,
    )


def check_label_map(labels, spec, path, offset, axis, options, ignore: bool = True) -> None:
    """Raise `InputError` on fractional ids or ids outside `[0, C)` (C given or inferred)."""
    try:
        check_labels(
            labels,
            sparse=True,
            num_classes=spec.num_classes,
            ignore_index=spec.ignore_index if ignore else None,
            path=path,
            offset=offset,
            axis=axis,
            ignorable=ignore,
        )
    except InputError as e:
        fractional = labels.dtype.kind == "f" and not np.array_equal(labels, np.floor(labels))
        if options.num_classes or fractional:
            raise
        negative = labels < 0
        if ignore and spec.ignore_index is not None:
            negative &= labels != spec.ignore_index
        advice = negative_ids_advice(labels[negative], ignore)
        raise InputError(
            path,
            f"holds label ids outside [0, {MAX_INFERRED_CLASSES}) (the most inferred without "
            f"--num-classes; largest {labels.max()}, smallest {labels.min()}); "
            f"{advice or 'pass --num-classes'}.",
        ) from e
