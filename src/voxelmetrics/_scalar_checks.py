"""The checks of scalar options (counts, sizes, choices, zero_division), Keras-free.

`ops._options` re-exports them for the ops, metrics, losses and the engine; the command
line runs the same functions on its flags at parse time, without importing Keras, so a
flag and a keyword argument are refused by one rule and in one wording.

Each check returns the option in the form the caller stores, or raises a ValueError naming
the option, what was expected and what arrived.

Example:
    >>> check_int("num_bins", 8)
    8
    >>> check_int("num_bins", 0)
    Traceback (most recent call last):
    ...
    ValueError: num_bins must be an integer >= 1; received 0.
"""

import math
import numbers
from collections.abc import Sequence


def check_int(name: str, value, minimum: int = 1) -> int:
    """`value` as a Python int `>= minimum`; numpy integer scalars (np.int64(8)) are accepted,
    bools and floats are not."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; received {value!r}.")
    return int(value)


def check_number(name: str, value, *, positive: bool = False) -> float:
    """A finite real number as a float (> 0 where `positive`, else >= 0)."""
    ok = not isinstance(value, bool) and isinstance(value, numbers.Real) and math.isfinite(value)
    if not ok or value < 0 or (positive and value == 0):
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound}; received {value!r} (a finite number).")
    return float(value)


def check_choice(name: str, value, choices: Sequence):
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {list(choices)}; received {value!r}.")
    return value


def zero_division_value(zero_division) -> float:
    """The float an undefined ratio (0 / 0) becomes: NaN ("nan", the default), 0 or 1."""
    if zero_division == "nan" or (isinstance(zero_division, float) and math.isnan(zero_division)):
        return float("nan")
    if zero_division in (0, 1) and not isinstance(zero_division, bool):
        return float(zero_division)
    raise ValueError(f'zero_division must be "nan", 0 or 1; received {zero_division!r}.')


def check_zero_division(zero_division):
    """zero_division as stored in config: "nan", 0 or 1 (float NaN is stored as "nan")."""
    value = zero_division_value(zero_division)
    return "nan" if math.isnan(value) else zero_division
