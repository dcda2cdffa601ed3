"""One validator per option, called by every layer (ops, metrics, losses, calibration, the
offline engine and the CLI).

Each `check_*` raises a ValueError saying what was expected and what arrived, and returns the
option in the form the caller stores (e.g. a threshold as a float or a list of floats).

Names decided here, in one table (the defaults themselves, `NUM_BINS` among them, live in
the Keras-free `voxelmetrics.defaults`, which the CLI reads too):

| option                      | decision                                              |
| --------------------------- | ----------------------------------------------------- |
| `num_bins`                  | `defaults.NUM_BINS` in ops, metrics, calibration, CLI |
| `threshold`                 | `score >= threshold`, in [0, 1], one or one per class |
| `class_weights` (scores)    | "inverse_frequency" is $1 / support_c$                |
| `class_weights` (BCE loss)  | "balanced" is $N^-_c / N^+_c$ (pos_weight)            |
| `F1Score(average=)`         | "macro", as every score metric (Keras: None)          |
| `class_names`               | unique strings, none of `RESERVED_NAMES`              |
| `on_invalid`                | "raise" in eager ops; "tally" in every metric         |
| `spacing`, `tolerance`      | boundary measures: > 0 per axis; >= 0 (per class)     |
| `convention` (boundary)     | one of `SURFACE_CONVENTIONS`, "monai" by default      |
| a class (`exclude`, ...)    | a name of the class names, or an id in [0, C)         |
| class names when none given | `class_0`, `class_1`, ... (`default_class_names`)     |

The metrics used 200 bins before (`num_bins=200` still gives those numbers). The loss's
"balanced" was spelled "inverse_frequency" before; that spelling still works, with a
DeprecationWarning.
"""

import numbers
from collections.abc import Sequence

import numpy as np
from keras import ops

from voxelmetrics._scalar_checks import check_choice as check_choice  # re-exported
from voxelmetrics._scalar_checks import check_int as check_int
from voxelmetrics._scalar_checks import check_number as check_number
from voxelmetrics._scalar_checks import check_zero_division as check_zero_division
from voxelmetrics._scalar_checks import zero_division_value as zero_division_value
from voxelmetrics.backends import is_concrete
from voxelmetrics.defaults import NUM_BINS as NUM_BINS  # re-exported: ops, metrics read it
from voxelmetrics.defaults import SURFACE_CONVENTIONS as SURFACE_CONVENTIONS
from voxelmetrics.defaults import THRESHOLD as THRESHOLD

MODES = ("multilabel", "multiclass", "sparse")
AVERAGES = (None, "none", "micro", "macro", "weighted")
RESERVED_NAMES = ("micro", "macro", "weighted", "none", "samplewise")
ACTIVATIONS = ("sigmoid", "softmax")
ON_INVALID = ("raise", "tally")


def check_on_invalid(on_invalid: str) -> str:
    """What an eager call does with a value it cannot count (NaN or out-of-range score, bad
    label or weight): "raise" (ops, the default) or "tally" (metrics: on every backend, eager
    or traced, the value is left out and counted in `invalid`)."""
    return check_choice("on_invalid", on_invalid, ON_INVALID)


def check_mode(mode: str) -> str:
    """One of `MODES`: "multilabel", "multiclass", "sparse"."""
    return check_choice("mode", mode, MODES)


def check_axis(axis) -> int:
    """The class axis as an int (any sign; `normalize_axis` checks it against a rank)."""
    if isinstance(axis, bool) or not isinstance(axis, numbers.Integral):
        raise ValueError(f"axis must be an integer; received {axis!r}.")
    return int(axis)


def check_from_logits(from_logits, *, activations: bool = True):
    """True / False, or (where `activations`) "sigmoid" / "softmax" / "none" naming one."""
    if isinstance(from_logits, bool | np.bool_):
        return bool(from_logits)
    if activations and (from_logits is None or from_logits in ("none", *ACTIVATIONS)):
        return from_logits
    expected = "True, False, 'sigmoid' or 'softmax'" if activations else "True or False"
    raise ValueError(f"from_logits must be {expected}; received {from_logits!r}.")


def check_num_classes(num_classes) -> int | None:
    """None (inferred later) or an integer >= 1."""
    return None if num_classes is None else check_int("num_classes", num_classes)


def check_class_names(class_names, num_classes: int | None = None) -> list[str] | None:
    """A list of unique strings, none of them reserved (`RESERVED_NAMES`), one per class."""
    if class_names is None:
        return None
    if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
        raise ValueError(f"class_names must be a list of strings; received {class_names!r}.")
    names = list(class_names)
    if len(set(names)) != len(names):
        repeated = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(f"class_names must be unique; {repeated} appear more than once.")
    reserved = [n for n in names if n.lower() in RESERVED_NAMES]
    if reserved:
        raise ValueError(
            f"class_names {reserved} are reserved for averages ({list(RESERVED_NAMES)}); "
            f"rename those classes."
        )
    if num_classes is not None and len(names) != num_classes:
        raise ValueError(f"class_names has {len(names)} names but num_classes={num_classes}.")
    return names


# The name of class N when no class names are given: metric result keys, report rows.
DEFAULT_CLASS_PREFIX = "class_"


def default_class_names(num_classes: int) -> list[str]:
    """The names of `num_classes` classes given no names: `class_0`, `class_1`, ... (the
    metrics' result keys, the report's rows; `class_index` reads them back).

    Example:
        >>> default_class_names(2)
        ['class_0', 'class_1']
    """
    return [f"{DEFAULT_CLASS_PREFIX}{c}" for c in range(num_classes)]


def class_index(
    item,
    names: Sequence[str] | None,
    num_classes: int | None,
    *,
    name: str,
    default_names: bool = False,
) -> int:
    """One class as its id: a name of `names`, or an id (an int or a digit string) in
    `[0, num_classes)` (only >= 0 while `C` is unknown); else a ValueError naming `name`.
    With `default_names` and no `names`, a default name `class_N` (`default_class_names`)
    is id N too.

    Example:
        >>> class_index("liver", ["background", "liver"], 2, name="--exclude")
        1
        >>> class_index(" 3", None, None, name="--exclude")
        3
        >>> class_index("class_3", None, None, name="--exclude", default_names=True)
        3
    """
    text = str(item).strip()
    if names is not None and text in names:
        return list(names).index(text)
    number = text.removeprefix(DEFAULT_CLASS_PREFIX) if default_names and names is None else text
    if number.isdigit() and (num_classes is None or int(number) < num_classes):
        return int(number)
    bound = f"in [0, {num_classes})" if num_classes is not None else ">= 0"
    if names is None:
        raise ValueError(
            f"{name} {text!r} is neither a class id {bound} nor a class name (none were given)."
        )
    raise ValueError(
        f"{name} {text!r} is neither a class name ({', '.join(names)}) nor a class id {bound}."
    )


def check_exclude(
    exclude, names: Sequence[str] | None, num_classes: int | None, *, name: str
) -> list[int]:
    """Classes left out of every average (reported per class only), as sorted unique ids.

    Each item is a class name (of `names`) or an id (an int or digit string) in
    `[0, num_classes)`; with `num_classes` unknown, ids are only checked to be >= 0 (the
    caller checks them again once `C` is known). Leaving out every class is refused.

    Example:
        >>> check_exclude(["background", 2], ["background", "liver", "tumour"], 3,
        ...               name="exclude_from_average")
        [0, 2]
    """
    items = [exclude] if isinstance(exclude, str | int) else list(exclude or ())
    ids = sorted({class_index(item, names, num_classes, name=name) for item in items})
    if num_classes is not None and len(ids) == num_classes:
        raise ValueError(f"{name} leaves out every class ({num_classes}): nothing to average.")
    return ids


def classes_from(num_classes, class_names) -> int | None:
    """`C` from `num_classes` and/or `class_names` (both checked), or None when unknown."""
    num_classes = check_num_classes(num_classes)
    names = check_class_names(class_names, num_classes)
    return num_classes if names is None else len(names)


def check_fraction(name: str, value) -> float:
    """`value` as a float in [0, 1] (a criterion's floor, an IoU), else a ValueError naming
    `name`; bools are refused.

    Example:
        >>> check_fraction("min_precision", 0.8)
        0.8
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number in [0, 1]; received {value!r}.")
    return float(value)


def check_threshold_values(
    threshold,
    num_classes: int | None = None,
    name: str = "threshold",
    *,
    classes_from: str | None = None,
) -> float | list[float]:
    """A host threshold as stored in config: a float, or one float per class, in [0, 1].

    The one threshold rule of every layer (ops, metrics, calibration, engine, CLI): a voxel
    is positive for class c iff `score >= threshold[c]`. A list must hold `num_classes`
    values when that is known; `classes_from` says where `C` came from (for the message).

    Args:
        threshold: a number, or a sequence / array `[C]` of numbers.
        num_classes: `C`, or None (a list of any length).
        name: the option as the caller's user spells it (`"--threshold"`, `"thresholds"`).
        classes_from: where `C` came from, e.g. `"--num-classes"` or a file.

    Example:
        >>> check_threshold_values(0.5), check_threshold_values([0.2, 0.7], 2)
        (0.5, [0.2, 0.7])
    """
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim > 1 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(
            f"{name} must lie in [0, 1] (score >= threshold), a number or one number per "
            f"class; received {threshold!r}."
        )
    if values.ndim == 1 and num_classes is not None and len(values) != num_classes:
        where = f" (from {classes_from})" if classes_from else ""
        raise ValueError(
            f"{name} has {len(values)} values but there are {num_classes} classes{where}; "
            f"give one value in [0, 1] or one per class."
        )
    return float(values) if values.ndim == 0 else values.tolist()


def threshold_per_class(
    threshold, num_classes: int, name: str = "threshold", *, classes_from: str | None = None
) -> np.ndarray:
    """float64 `[C]`: a threshold checked by `check_threshold_values` and broadcast to every
    class (a number or a single value: the same for all; else one per class).

    Example:
        >>> threshold_per_class(0.3, 3).tolist(), threshold_per_class([0.4], 2).tolist()
        ([0.3, 0.3, 0.3], [0.4, 0.4])
    """
    values = np.asarray(check_threshold_values(threshold, name=name), np.float64).reshape(-1)
    if values.size != 1:
        check_threshold_values(values, num_classes, name, classes_from=classes_from)
    return np.broadcast_to(values, (num_classes,)).copy()


def check_threshold(threshold, num_classes: int) -> None:
    """A threshold tensor of shape `()`, `(1,)` or `(C,)`; its values in [0, 1] when concrete
    (a traced threshold is checked by shape only)."""
    shape = tuple(threshold.shape) if hasattr(threshold, "shape") else np.shape(threshold)
    if shape not in ((), (1,), (num_classes,)):
        raise ValueError(
            f"threshold must be a scalar or one value per class ({num_classes},); got shape "
            f"{shape}."
        )
    if is_concrete(threshold):
        check_threshold_values(np.asarray(ops.convert_to_numpy(threshold)).reshape(-1))


def check_num_bins(num_bins) -> int:
    """B, an integer >= 1 (`NUM_BINS` by default everywhere)."""
    return check_int("num_bins", num_bins)


def check_average(average, class_weights=None) -> None:
    """Raise unless `average` is known and `class_weights` goes with average="weighted"."""
    if average not in AVERAGES:
        raise ValueError(
            f"average must be one of None, 'none', 'micro', 'macro', 'weighted'; received "
            f"{average!r}."
        )
    if class_weights is not None and average != "weighted":
        raise ValueError(
            f"class_weights applies to average='weighted'; received average={average!r}."
        )
    if isinstance(class_weights, str) and class_weights != "inverse_frequency":
        raise ValueError(
            f"class_weights must be an array of per-class weights or 'inverse_frequency'; "
            f"received {class_weights!r}."
        )


def normalize_average(average):
    """`"none"` and None mean per class: None. Raises on an unknown average."""
    check_average(average)
    return None if average in (None, "none") else average


def check_class_weights(class_weights, average, num_classes: int | None = None):
    """class_weights as stored in config: None, "inverse_frequency" or a list of floats
    (finite, >= 0, one per class)."""
    check_average(average, class_weights)
    if class_weights is None or isinstance(class_weights, str):
        return class_weights
    return check_weight_list(class_weights, num_classes)


def check_weight_list(class_weights, num_classes: int | None = None) -> list[float]:
    """Per-class weights (the averages', the weighted loss's) as a list of floats: 1-D, one
    per class when `num_classes` is given, each finite and >= 0.

    Example:
        >>> check_weight_list((1, 2.5))
        [1.0, 2.5]
    """
    weights = np.asarray(class_weights, dtype=np.float64)
    if weights.ndim != 1 or (num_classes is not None and len(weights) != num_classes):
        count = "" if num_classes is None else f" ({num_classes})"
        raise ValueError(
            f"class_weights must be a 1-D list of one weight per class{count}; received "
            f"{class_weights!r}."
        )
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(f"class_weights must be finite and >= 0; received {class_weights!r}.")
    return weights.tolist()


# ----------------------------------------------------------------------------- boundary


def check_spatial_dims(spatial_dims) -> int:
    """The spatial axes of a boundary measure's volumes: 1, 2 or 3."""
    if isinstance(spatial_dims, bool) or spatial_dims not in (1, 2, 3):
        raise ValueError(f"spatial_dims must be 1, 2 or 3; received {spatial_dims!r}.")
    return int(spatial_dims)


def check_spacing(spacing, spatial_dims: int) -> tuple[float, ...]:
    """One positive, finite voxel size per spatial axis (None: 1.0; a number: isotropic).

    Example:
        >>> check_spacing(None, 2), check_spacing([1.5, 0.8, 0.8], 3)
        ((1.0, 1.0), (1.5, 0.8, 0.8))
    """
    values = np.asarray(1.0 if spacing is None else spacing, np.float64)
    if values.ndim == 0:
        values = np.full(spatial_dims, values)
    ok = values.shape == (spatial_dims,) and np.all(np.isfinite(values) & (values > 0))
    if not ok:
        raise ValueError(
            f"spacing must be a positive number or one positive number per spatial axis "
            f"({spatial_dims}); received {spacing!r}."
        )
    return tuple(float(s) for s in values)


def check_tolerance(tolerance, num_classes: int | None = None) -> float | list[float]:
    """The NSD tolerance as a float or one float per class, each finite and >= 0.

    Example:
        >>> check_tolerance(2), check_tolerance([1, 0.5], 2)
        (2.0, [1.0, 0.5])
    """
    values = np.asarray(tolerance, np.float64)
    ok = values.ndim == 0 or (values.ndim == 1 and num_classes in (None, len(values)))
    if not ok or not np.all(np.isfinite(values) & (values >= 0)):
        raise ValueError(
            f"tolerance must be a finite number >= 0 or one per class ({num_classes}); "
            f"received {tolerance!r}."
        )
    return float(values) if values.ndim == 0 else values.tolist()


def check_percentile(percentile) -> float | None:
    """The Hausdorff percentile as a float in [0, 100], or None (the maximum).

    Example:
        >>> check_percentile(95), check_percentile(None)
        (95.0, None)
    """
    if percentile is not None and not 0 <= percentile <= 100:
        raise ValueError(f"percentile must lie in [0, 100] or be None; received {percentile!r}.")
    return None if percentile is None else float(percentile)


def check_convention(convention) -> str:
    """`convention` if it names one of `SURFACE_CONVENTIONS` (whose definitions
    `ops/surface_rules.py` implements); a ValueError saying which exist otherwise.

    Example:
        >>> check_convention("deepmind")
        'deepmind'
    """
    if not isinstance(convention, str) or convention not in SURFACE_CONVENTIONS:
        raise ValueError(
            f"convention must be one of {', '.join(map(repr, SURFACE_CONVENTIONS))}; "
            f"received {convention!r}."
        )
    return convention
