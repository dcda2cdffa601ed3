"""The threshold-selection criterion as one value: its name and every option it takes.

`Criterion` is what `optimal_threshold`, `refine_threshold`, `OptimalThreshold` and
`ThresholdCalibration` accept; `Criterion.parse` reads the CLI's `recall_at_precision:0.8`.
"""

import dataclasses

from voxelmetrics.defaults import CRITERIA as CRITERIA  # re-exported: thresholds reads it
from voxelmetrics.defaults import CRITERION, CriterionName
from voxelmetrics.defaults import CRITERION_SPELLINGS as SPELLINGS
from voxelmetrics.ops._options import check_choice, check_fraction, check_number

# The constrained criteria: the rate maximised, the rate held at a floor, the floor's option.
CONSTRAINED = {
    "recall_at_precision": ("recall", "precision", "min_precision"),
    "precision_at_recall": ("precision", "recall", "min_recall"),
    "recall_at_specificity": ("recall", "specificity", "min_specificity"),
    "specificity_at_recall": ("specificity", "recall", "min_recall"),
}
# The options each criterion takes, in the order its text spelling lists them.
OPTIONS = {
    "fbeta": ("beta",),
    **{name: (floor,) for name, (_, _, floor) in CONSTRAINED.items()},
    "cost": ("cost_fp", "cost_fn"),
}
FLOORS = ("min_precision", "min_recall", "min_specificity")
_DEFAULTS = {"beta": 1.0, **dict.fromkeys(FLOORS), "cost_fp": 1.0, "cost_fn": 1.0}


@dataclasses.dataclass(frozen=True)
class Criterion:
    r"""What `optimal_threshold` maximises, and which thresholds it may choose.

    Formulas in `voxelmetrics.ops.thresholds.criterion_value`: "f1" (= "dice"), "fbeta"
    (`beta` > 0), "iou", "youden" (TPR - FPR), "recall_at_precision" (max recall with
    precision >= `min_precision`), "precision_at_recall" (max precision with recall >=
    `min_recall`), "recall_at_specificity" (max recall, i.e. sensitivity, with specificity
    >= `min_specificity`: Keras' `SensitivityAtSpecificity`), "specificity_at_recall" (max
    specificity with recall >= `min_recall`: Keras' `SpecificityAtSensitivity`), "cost"
    (min $c_{fp} FP + c_{fn} FN$, `cost_fp`, `cost_fn` >= 0, not both 0).
    An option the criterion does not take is an error, never silently ignored. Hashable:
    compiled kernels key on it.

    Example:
        >>> Criterion.parse("recall_at_precision:0.8").options
        {'min_precision': 0.8}
        >>> str(Criterion("cost", cost_fp=1, cost_fn=5))
        'cost:1:5'
        >>> Criterion.of("fbeta", beta=2) == Criterion.parse("fbeta:2")
        True
    """

    name: CriterionName = CRITERION
    beta: float = 1.0
    min_precision: float | None = None
    min_recall: float | None = None
    min_specificity: float | None = None
    cost_fp: float = 1.0
    cost_fn: float = 1.0

    def __post_init__(self):
        check_choice("criterion", self.name, CRITERIA)
        taken = OPTIONS.get(self.name, ())
        for key, default in _DEFAULTS.items():
            if key not in taken and getattr(self, key) != default:
                owners = " / ".join(repr(n) for n, keys in OPTIONS.items() if key in keys)
                spelled = "cost_fp / cost_fn apply" if key in OPTIONS["cost"] else f"{key} applies"
                raise ValueError(f"{spelled} to criterion={owners}, not {self.name!r}.")
        if self.name == "fbeta":
            object.__setattr__(self, "beta", check_number("beta", self.beta, positive=True))
        for key in FLOORS:
            if key in taken:
                if getattr(self, key) is None:
                    raise ValueError(f"criterion={self.name!r} needs {key} in [0, 1].")
                object.__setattr__(self, key, check_fraction(key, getattr(self, key)))
        if self.name == "cost":
            for key in ("cost_fp", "cost_fn"):
                object.__setattr__(self, key, check_number(key, getattr(self, key)))
            if self.cost_fp + self.cost_fn == 0:
                raise ValueError("cost_fp and cost_fn must not both be 0.")

    keywords = tuple(_DEFAULTS)  # every option's keyword, whichever criterion takes it

    @property
    def options(self) -> dict:
        """The options this criterion takes, as keywords (e.g. `{"min_precision": 0.8}`)."""
        return {key: getattr(self, key) for key in OPTIONS.get(self.name, ())}

    def __str__(self) -> str:
        """The text spelling `Criterion.parse` reads back exactly: `name[:option[:option]]`,
        each option the shortest decimal that is the same float (`0.9`, `5`, `0.123456789`).
        Saved configs hold this string, so that it is the one place the options live."""
        return ":".join([self.name, *(_spelling(v) for v in self.options.values())])

    @classmethod
    def parse(cls, text: str) -> "Criterion":
        """`"f1"`, `"fbeta:2"`, `"recall_at_precision:0.9"`, `"precision_at_recall:0.8"`,
        `"recall_at_specificity:0.95"`, `"specificity_at_recall:0.9"`, `"cost:1:5"` (cost of
        a false positive, of a false negative) as a `Criterion`."""
        name, *values = str(text).split(":")
        keys = OPTIONS.get(name, ())
        if name not in CRITERIA or len(values) != len(keys):
            raise ValueError(f"criterion {text!r} is not one of: {SPELLINGS}.")
        try:
            options = {k: float(v) for k, v in zip(keys, values, strict=True)}
        except ValueError:
            raise ValueError(f"criterion {text!r} needs numbers after its name.") from None
        return cls(name, **options)

    @classmethod
    def of(cls, criterion: "Criterion | str" = CRITERION, **options) -> "Criterion":
        """Every accepted spelling as one `Criterion`: a `Criterion`, a text spelling
        (`"fbeta:2"`), or a name with keyword options (`"fbeta", beta=2`). Options equal to
        their defaults are ignored, so callers may pass all of them, and so may a config
        saved before configs held `str(criterion)` (its name plus every option)."""
        unknown = sorted(set(options) - set(_DEFAULTS))
        if unknown:
            raise TypeError(
                f"unexpected criterion option {unknown[0]!r}; the options are "
                f"{', '.join(_DEFAULTS)}."
            )
        given = {k: v for k, v in options.items() if v != _DEFAULTS[k]}
        if isinstance(criterion, Criterion) or ":" in str(criterion):
            if given:
                raise ValueError(
                    f"criterion {criterion!s} already holds its options; received {given} too."
                )
            return criterion if isinstance(criterion, Criterion) else cls.parse(criterion)
        return cls(criterion, **given)


def _spelling(value: float) -> str:
    """`repr` of a float, the shortest text that parses back to it, without a trailing `.0`."""
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text
