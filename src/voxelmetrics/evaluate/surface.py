"""Boundary metrics in the offline engine: `--surface hd95,assd,nsd:2.0` and voxel spacing.

A distance transform needs a whole case at once, so each case is read whole (not chunked)
and measured by `voxelmetrics.ops.surface_metrics`: every class in one compiled call.
"""

import dataclasses
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from voxelmetrics.defaults import SURFACE_CONVENTION
from voxelmetrics.evaluate.readers import MASK_CUT, InputError, Volume, voxel_size
from voxelmetrics.ops._host import on_host
from voxelmetrics.ops._options import (
    check_number,
    check_spacing,
    check_tolerance,
    class_index,
    threshold_per_class,
)
from voxelmetrics.ops.counting import predicted
from voxelmetrics.ops.surface_rules import surfel_areas, uses_surfels

MEASURES = ("hd", "hd95", "assd", "nsd")
# What each measure is called in reports, and which field of `surface_metrics` holds it.
_FIELDS = {"hd": "hausdorff", "hd95": "hausdorff", "assd": "average_surface_distance"}
# A voxel size read from a header and one given on the command line agree within this
# relative tolerance (headers store float32).
SPACING_RTOL = 1e-4
# The key of `case_measures`' result that marks a class missed on one side (not a measure).
MISSED = "missed"


@dataclasses.dataclass(frozen=True)
class SurfaceRequest:
    """Which boundary measures to report, and by which rules.

    Attributes:
        measures: report names in the order asked, e.g. `("hd95", "assd", "nsd")`.
        tolerance: the NSD tolerance in the spacing's units, one for every class (None
            when NSD is not asked or `class_tolerances` gives one per class).
        class_tolerances: `((class, tolerance), ...)` from `nsd:liver=5,aorta=2`; a class
            is a name (resolved against the class names by `resolved`) or an id.
        convention: whose definitions (`monai`, `deepmind`, `medpy`: `--surface-convention`).
        missing: what HD, HD95 and ASSD score for a structure missed on one side (one mask
            empty): `inf`, `nan`, `diagonal` (the case's diagonal in the spacing's units)
            or a number (`--surface-missing`).
        exclude: class ids not measured (`--exclude`): NaN, and listed as not measured.
    """

    measures: tuple[str, ...]
    tolerance: float | None = None
    class_tolerances: tuple[tuple[str | int, float], ...] = ()
    convention: str = SURFACE_CONVENTION
    missing: str = "inf"
    exclude: tuple[int, ...] = ()

    @property
    def percentile(self) -> float | None:
        """The Hausdorff percentile `surface_metrics` computes: 95 for hd95, None for hd."""
        return None if "hd" in self.measures else 95.0

    @classmethod
    def from_json(cls, values: dict) -> "SurfaceRequest":
        """The request of `dataclasses.asdict(request)` read back from JSON (lists -> tuples)."""
        values = dict(values)
        values["measures"] = tuple(values["measures"])
        values["class_tolerances"] = tuple(tuple(t) for t in values.get("class_tolerances", ()))
        values["exclude"] = tuple(values.get("exclude", ()))
        return cls(**values)

    def resolved(self, class_names, exclude=()) -> "SurfaceRequest":
        """Class names in `class_tolerances` and `exclude` turned into ids.

        Args:
            class_names: the names given (`--class-names`), or None (then ids, and the
                default names `class_N`, only).
            exclude: `--exclude` as given (names or ids).

        Raises:
            ValueError: a name that is no class.
        """
        names = list(class_names or ())
        tolerances = tuple(
            (class_id(c, names, "--surface nsd"), t) for c, t in self.class_tolerances
        )
        skip = tuple(sorted({class_id(c, names, "--exclude") for c in exclude}))
        return dataclasses.replace(self, class_tolerances=tolerances, exclude=skip)

    def tolerance_of(self, classes: Sequence[int], names: Sequence[str] | None = None):
        """`tolerance(c)` for the classes measured; a class without one is an error.

        Raises:
            InputError: (naming `--surface`) the classes that have no tolerance.
        """
        if not self.class_tolerances:
            tol = 1.0 if self.tolerance is None else self.tolerance
            return lambda c: tol
        table = {int(c): t for c, t in self.class_tolerances}
        lacking = [c for c in classes if c not in table]
        if lacking and "nsd" in self.measures:
            shown = ", ".join(names[c] if names and c < len(names) else str(c) for c in lacking)
            raise InputError(
                "--surface",
                f"nsd gives a tolerance per class, but none for {shown}; give each measured "
                "class one (or --exclude it).",
            )
        return lambda c: table.get(c, 1.0)


def class_id(item, names: Sequence[str], option: str) -> int:
    """A class id from a name in `names`, an id (digits), or (no names given) a default name
    `class_N`: `_options.class_index`, with C not yet known.

    Example:
        >>> class_id("liver", ["background", "liver"], "--exclude"), class_id("class_3", [], "-")
        (1, 3)
    """
    return class_index(item, list(names) or None, None, name=option, default_names=True)


def parse_surface(text: str) -> SurfaceRequest:
    """`"hd95,assd,nsd:2.0"` -> `SurfaceRequest(("hd95", "assd", "nsd"), 2.0)`.

    Any subset of `hd` (maximum), `hd95`, `assd`, `nsd:TOLERANCE`; each once; hd and hd95
    not together (one transform serves one percentile). The NSD tolerance is one number
    for every class, or one per class by name or id: `nsd:liver=5,aorta=2,3=1.5` (the
    items with `=` after `nsd:` belong to it).

    Example:
        >>> parse_surface("hd95,nsd:1.5").measures, parse_surface("hd95,nsd:1.5").tolerance
        (('hd95', 'nsd'), 1.5)
        >>> parse_surface("nsd:liver=5,2=1,hd95").class_tolerances
        (('liver', 5.0), ('2', 1.0))
    """
    measures, tolerance, per_class = [], None, []
    for item in (part.strip() for part in text.split(",")):
        name, _, value = item.partition(":")
        if "=" in item and not value and measures and measures[-1] == "nsd" and per_class:
            name, value = "nsd", item  # another class of nsd's per-class list
        elif name not in MEASURES or (name == "nsd") != bool(value) or name in measures:
            raise ValueError(
                f"--surface {text!r}: expected a comma-separated subset of hd, hd95, assd, "
                f"nsd:TOLERANCE or nsd:CLASS=TOLERANCE,... (e.g. hd95,assd,nsd:2.0), each "
                f"once; got {item!r}."
            )
        else:
            measures.append(name)
        if name != "nsd":
            continue
        what = f"--surface {text!r}: the NSD tolerance"
        if "=" in value:
            key, _, number = value.partition("=")
            if not key.strip() or key.strip() in {k for k, _ in per_class}:
                raise ValueError(f"{what}s: each class once, as CLASS=TOLERANCE; got {item!r}.")
            per_class.append((key.strip(), _tolerance(number, what)))
        else:
            tolerance = _tolerance(value, what)
    if {"hd", "hd95"} <= set(measures):
        raise ValueError(f"--surface {text!r}: ask for hd or hd95, not both.")
    if per_class:
        return SurfaceRequest(tuple(measures), None, tuple(per_class))
    return SurfaceRequest(tuple(measures), tolerance)


MISSING = ("inf", "nan", "diagonal")


def parse_missing(text: str) -> str:
    """`--surface-missing`: `inf`, `nan`, `diagonal` or a number >= 0 (kept as written).

    Example:
        >>> parse_missing("374"), parse_missing("diagonal")
        ('374', 'diagonal')
    """
    if text in MISSING:
        return text
    try:
        check_number("--surface-missing", float(text))
    except ValueError:
        raise ValueError(
            f"--surface-missing {text!r}: expected inf, nan, diagonal or a number >= 0."
        ) from None
    return text


def missing_value(policy: str, spacing: Sequence[float], spatial: Sequence[int]) -> float:
    r"""The HD / HD95 / ASSD of a structure missed on one side, under `policy`.

    `diagonal` is the case's diagonal $\sqrt{\sum_i (n_i s_i)^2}$ in the spacing's units.

    Example:
        >>> missing_value("diagonal", (1.0, 2.0), (3, 2)), missing_value("374", (1,), (5,))
        (5.0, 374.0)
    """
    if policy == "diagonal":
        return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(spatial, spacing, strict=True))))
    return float(policy)


def _number(text: str, what: str) -> float:
    """`text` as a float, else a ValueError naming `what`."""
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"{what} must be a number; got {text!r}.") from None


def _tolerance(text: str, what: str) -> float:
    """An NSD tolerance by the library's rule (`_options.check_tolerance`: finite, >= 0)."""
    value = _number(text, what)
    try:
        return check_tolerance(value)
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def parse_spacing(text: str) -> tuple[float, ...]:
    """`"1,1,2.5"` -> `(1.0, 1.0, 2.5)`: the voxel size along each spatial axis, by the
    library's rule (`_options.check_spacing`: each finite and > 0).

    Example:
        >>> parse_spacing("0.8,0.8,3")
        (0.8, 0.8, 3.0)
    """
    what = f"--spacing {text!r}"
    values = [_number(v, f"{what}: each voxel size") for v in text.split(",")]
    try:
        return check_spacing(values, len(values))
    except ValueError as e:
        raise ValueError(f"{what}: {e}") from None


def header_spacing(path: str | Path) -> tuple[float, ...] | None:
    """The voxel size of a NIfTI file's first three (spatial) axes, else None (the rule
    for a zero, negative or NaN pixdim: `readers.voxel_size`)."""
    return voxel_size(path)


def case_spacing(
    pred: Volume, true: Volume, given: Sequence[float] | None, spatial_dims: int
) -> tuple[float, ...]:
    """The voxel size of one case: from the NIfTI headers, checked against `--spacing`.

    Raises `InputError` when the prediction's and the truth's headers disagree, or a
    header disagrees with `given`; with no header and nothing given, every voxel is 1.0.
    """
    found = [(v.path, header_spacing(v.path)) for v in (true, pred)]
    found = [(path, s[:spatial_dims]) for path, s in found if s is not None]
    if given is not None:
        try:
            given = check_spacing(given, spatial_dims)
        except ValueError as e:
            raise InputError(
                pred.path,
                f"has {spatial_dims} spatial axes, and --spacing gives {np.size(given)} voxel "
                f"sizes: {e}",
            ) from None
    reference = given if given is not None else (found[0][1] if found else None)
    source = "--spacing" if given is not None else (found[0][0] if found else None)
    for path, spacing in found:
        if len(spacing) != len(reference):  # a header of fewer axes than --spacing gives
            raise InputError(
                path,
                f"has {len(spacing)} spatial axes (voxel size {spacing} in its header), but "
                f"{source} gives {len(reference)} voxel sizes.",
            )
        if not np.allclose(spacing, reference, rtol=SPACING_RTOL, atol=0):
            raise InputError(
                path,
                f"has voxel size {spacing} in its header, but {source} says {reference}; "
                "boundary distances need one spacing (fix the header or --spacing).",
            )
    return tuple(float(s) for s in reference) if reference is not None else (1.0,) * spatial_dims


def read_whole(volume: Volume) -> np.ndarray:
    """The whole array of `volume`, read along its contiguous axis."""
    axis = len(volume.shape) - 1 if volume.fortran else 0
    out = np.empty(volume.shape, volume.dtype)
    volume.read_into(0, volume.shape[axis], out, axis)
    return out


def spatial_grid(grid: Sequence[int], spatial_dims: int, path: str) -> tuple[int, ...]:
    """The `spatial_dims` spatial axes of one case's voxel grid: axes of length 1 after
    them (a NIfTI's `(X, Y, Z, 1)`) or before them (a volume axis `(1, X, Y, Z)`) are
    dropped; anything else is refused.

    Example:
        >>> spatial_grid((5, 6, 7, 1), 3, "a.nii"), spatial_grid((1, 5, 6), 2, "a.npy")
        ((5, 6, 7), (5, 6))
    """
    axes = list(grid)
    while len(axes) > spatial_dims and axes[-1] == 1:
        axes.pop()
    while len(axes) > spatial_dims and axes[0] == 1:
        axes.pop(0)
    if len(axes) != spatial_dims:
        raise InputError(
            path,
            f"has voxel grid {tuple(grid)}: boundary metrics measure one volume of "
            f"{spatial_dims} spatial axes per case (axes of length 1 around them are allowed).",
        )
    return tuple(axes)


def case_measures(
    y_true: np.ndarray,
    y_pred: np.ndarray,
    request: SurfaceRequest,
    *,
    spacing: Sequence[float],
    threshold,
    axis: int,
    num_classes: int,
    true_labels: bool,
    pred_labels: bool,
    path: str = "<array>",
    check: Callable[[], None] | None = None,
) -> dict[str, np.ndarray]:
    """One case's boundary measures: `{name: [C] float64}` in `request.measures` order,
    then `MISSED`: 1.0 where the class was missed on one side (one mask empty), else 0.

    Host only, at the cost of each class's boundary (`evaluate/boundary.py`): label maps
    give the boundaries of all their classes in one pass; masks and scores one class at a
    time, cropped to its box. Classes in `request.exclude` are not measured (NaN).

    Args:
        y_true: multi-hot masks with a class axis, or a label map (`true_labels`; ids
            outside `[0, C)`, an ignore label, belong to no class).
        y_pred: scores (predicted where `score >= threshold`) or multi-hot masks with a
            class axis, or a label map (`pred_labels`).
        spacing: the voxel size of the last `len(spacing)` voxel axes; any voxel axes
            before them must have length 1 (a case is one volume).
        threshold: a number or one per class.
        axis: the class axis of the arrays that have one.
        num_classes: `C`.
        check: called before each class (the CLI stops there after Ctrl-C).
    """
    from voxelmetrics.evaluate.boundary import Side, case_boundary_measures

    grid = y_pred.shape if pred_labels else tuple(np.delete(y_pred.shape, axis))
    spatial = spatial_grid(grid, len(spacing), path)
    if uses_surfels(request.convention):
        try:  # the surfel rule's own check of the spatial axes (its areas are cached)
            surfel_areas(tuple(float(s) for s in spacing))
        except ValueError as e:
            raise InputError(path, f"--surface-convention {request.convention}: {e}") from None
    thresholds = threshold_per_class(threshold, num_classes)

    def side(array, labels: bool, cut: np.ndarray) -> Side:
        """A label map as it is; masks and scores one class at a time (`predicted` at
        `cut[c]`)."""
        if labels:
            return Side(labels=array.reshape(spatial))
        classes_last = np.moveaxis(array, axis, -1)

        def mask(c: int) -> np.ndarray:
            with on_host():
                return predicted(classes_last[..., c], cut[c]).reshape(spatial)

        return Side(mask=mask)

    classes = [c for c in range(num_classes) if c not in request.exclude]
    found = case_boundary_measures(
        side(y_true, true_labels, np.full(num_classes, MASK_CUT)),  # truth masks are 0/1
        side(y_pred, pred_labels, thresholds),
        classes,
        spacing=spacing,
        convention=request.convention,
        percentile=request.percentile,
        tolerance=request.tolerance_of(classes),
        check=check,
    )
    missed_value = missing_value(request.missing, spacing, spatial)
    fields = {**_FIELDS, "nsd": "surface_dice"}
    out = {name: np.full(num_classes, np.nan) for name in (*request.measures, MISSED)}
    for c, values in found.items():
        missed = values["missed"]
        out[MISSED][c] = float(missed)
        for name in request.measures:
            value = values[fields[name]]
            out[name][c] = missed_value if missed and name != "nsd" else value
    return out
