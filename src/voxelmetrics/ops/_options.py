"""One validator per option, called by every layer (ops, metrics, losses, calibration).

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

The metrics used 200 bins before (`num_bins=200` still gives those numbers). The loss's
"balanced" was spelled "inverse_frequency" before; that spelling still works, with a
DeprecationWarning.
"""

import numbers
from collections.abc import Sequence

import numpy as np
from keras import ops

from voxelmetrics.backends import is_concrete
from voxelmetrics.defaults import NUM_BINS as NUM_BINS  # re-exported: ops, metrics read it
from voxelmetrics.defaults import THRESHOLD as THRESHOLD

MODES = ("multilabel", "multiclass", "sparse")
AVERAGES = (None, "none", "micro", "macro", "weighted")
RESERVED_NAMES = ("micro", "macro", "weighted", "none", "samplewise")
ACTIVATIONS = ("sigmoid", "softmax")
ON_INVALID = ("raise", "tally")


def check_int(name: str, value, minimum: int = 1) -> int:
    """`value` as a Python int `>= minimum`; numpy integer scalars (np.int64(8)) are accepted,
    bools and floats are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; received {value!r}.")
    return int(value)


def check_number(name: str, value, *, positive: bool = False) -> float:
    """A finite real number as a float (> 0 where `positive`, else >= 0)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and np.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound}; received {value!r} (a finite number).")
    return float(value)


def check_choice(name: str, value, choices: Sequence):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; received {value!r}.")
    return value


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
    ids = []
    for item in items:
        text = str(item).strip()
        if names is not None and text in names:
            ids.append(list(names).index(text))
        elif text.isdigit() and (num_classes is None or int(text) < num_classes):
            ids.append(int(text))
        else:
            known = f"a class name ({', '.join(names)}) nor " if names is not None else ""
            bound = f"in [0, {num_classes})" if num_classes is not None else ">= 0"
            raise ValueError(f"{name} {text!r} is neither {known}a class id {bound}.")
    ids = sorted(set(ids))
    if num_classes is not None and len(ids) == num_classes:
        raise ValueError(f"{name} leaves out every class ({num_classes}): nothing to average.")
    return ids


def classes_from(num_classes, class_names) -> int | None:
    """`C` from `num_classes` and/or `class_names` (both checked), or None when unknown."""
    num_classes = check_num_classes(num_classes)
    names = check_class_names(class_names, num_classes)
    return num_classes if names is None else len(names)


def check_threshold_values(
    threshold, num_classes: int | None = None, name: str = "threshold"
) -> float | list[float]:
    """A host threshold as stored in config: a float, or one float per class, in [0, 1]."""
    values = np.asarray(threshold, dtype=np.float64)
    if values.ndim > 1 or not np.all((values >= 0) & (values <= 1)):
        raise ValueError(
            f"{name} must lie in [0, 1] (score >= threshold), a number or one number per "
            f"class; received {threshold!r}."
        )
    if values.ndim == 1 and num_classes is not None and len(values) != num_classes:
        raise ValueError(f"threshold has {len(values)} values but there are {num_classes} classes.")
    return float(values) if values.ndim == 0 else values.tolist()


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


def zero_division_value(zero_division) -> float:
    """The float an undefined ratio becomes: NaN ("nan", the default), 0 or 1."""
    if zero_division == "nan" or (isinstance(zero_division, float) and np.isnan(zero_division)):
        return float("nan")
    if zero_division in (0, 1) and not isinstance(zero_division, bool):
        return float(zero_division)
    raise ValueError(f'zero_division must be "nan", 0 or 1; received {zero_division!r}.')


def check_zero_division(zero_division):
    """zero_division as stored in config: "nan", 0 or 1 (float NaN is stored as "nan")."""
    value = zero_division_value(zero_division)
    return "nan" if np.isnan(value) else zero_division


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
    weights = np.asarray(class_weights, dtype=np.float64)
    if weights.ndim != 1 or (num_classes is not None and len(weights) != num_classes):
        raise ValueError(
            f"class_weights must hold one weight per class ({num_classes}); received "
            f"{class_weights!r}."
        )
    if not np.all(np.isfinite(weights) & (weights >= 0)):
        raise ValueError(f"class_weights must be finite and >= 0; received {class_weights!r}.")
    return weights.tolist()
