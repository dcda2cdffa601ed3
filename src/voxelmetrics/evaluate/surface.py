"""Boundary metrics in the offline engine: `--surface hd95,assd,nsd:2.0` and voxel spacing.

A distance transform needs a whole case at once, so each case is read whole (not chunked)
and measured by `voxelmetrics.ops.surface_metrics`: every class in one compiled call.
"""

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from voxelmetrics.evaluate.readers import InputError, Volume, voxel_size

MEASURES = ("hd", "hd95", "assd", "nsd")
# What each measure is called in reports, and which field of `surface_metrics` holds it.
_FIELDS = {"hd": "hausdorff", "hd95": "hausdorff", "assd": "average_surface_distance"}
# A voxel size read from a header and one given on the command line agree within this
# relative tolerance (headers store float32).
SPACING_RTOL = 1e-4


@dataclasses.dataclass(frozen=True)
class SurfaceRequest:
    """Which boundary measures to report.

    Attributes:
        measures: report names in the order asked, e.g. `("hd95", "assd", "nsd")`.
        tolerance: the NSD tolerance in the spacing's units (None when NSD is not asked).
    """

    measures: tuple[str, ...]
    tolerance: float | None = None

    @property
    def percentile(self) -> float | None:
        """The Hausdorff percentile `surface_metrics` computes: 95 for hd95, None for hd."""
        return None if "hd" in self.measures else 95.0


def parse_surface(text: str) -> SurfaceRequest:
    """`"hd95,assd,nsd:2.0"` -> `SurfaceRequest(("hd95", "assd", "nsd"), 2.0)`.

    Any subset of `hd` (maximum), `hd95`, `assd`, `nsd:TOLERANCE`; each once; hd and hd95
    not together (one transform serves one percentile).

    Example:
        >>> parse_surface("hd95,nsd:1.5")
        SurfaceRequest(measures=('hd95', 'nsd'), tolerance=1.5)
    """
    measures, tolerance = [], None
    for item in (part.strip() for part in text.split(",")):
        name, _, value = item.partition(":")
        if name not in MEASURES or (name == "nsd") != bool(value) or name in measures:
            raise ValueError(
                f"--surface {text!r}: expected a comma-separated subset of hd, hd95, assd, "
                f"nsd:TOLERANCE (e.g. hd95,assd,nsd:2.0), each once; got {item!r}."
            )
        if name == "nsd":
            tolerance = _positive_float(value, f"--surface {text!r}: the NSD tolerance")
        measures.append(name)
    if {"hd", "hd95"} <= set(measures):
        raise ValueError(f"--surface {text!r}: ask for hd or hd95, not both.")
    return SurfaceRequest(tuple(measures), tolerance)


def _positive_float(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not np.isfinite(value) or value <= 0:
        raise ValueError(f"{what} must be a positive number; got {text!r}.")
    return value


def parse_spacing(text: str) -> tuple[float, ...]:
    """`"1,1,2.5"` -> `(1.0, 1.0, 2.5)`: the voxel size along each spatial axis.

    Example:
        >>> parse_spacing("0.8,0.8,3")
        (0.8, 0.8, 3.0)
    """
    return tuple(
        _positive_float(v, f"--spacing {text!r}: each voxel size") for v in text.split(",")
    )


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
    if given is not None and len(given) != spatial_dims:
        raise InputError(
            pred.path,
            f"has {spatial_dims} spatial axes, but --spacing gives {len(given)} voxel sizes.",
        )
    reference = tuple(given) if given is not None else (found[0][1] if found else None)
    source = "--spacing" if given is not None else (found[0][0] if found else None)
    for path, spacing in found:
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
) -> dict[str, np.ndarray]:
    """One case's boundary measures: `{name: [C] float64}` in `request.measures` order.

    Args:
        y_true: multi-hot masks with a class axis, or a label map (`true_labels`; ids
            outside `[0, C)`, an ignore label, belong to no class).
        y_pred: scores (predicted where `score >= threshold`) or multi-hot masks with a
            class axis, or a label map (`pred_labels`).
        spacing: the voxel size of the last `len(spacing)` voxel axes; any voxel axes
            before them must have length 1 (a case is one volume).
        axis: the class axis of the arrays that have one.
        num_classes: `C`.
    """
    from voxelmetrics.ops.surface import surface_metrics

    if true_labels:  # one-hot on the host: ids outside [0, C) (an ignore label) are no class
        y_true = y_true[..., None] == np.arange(num_classes)
    else:
        y_true = np.moveaxis(y_true, axis, -1)
    y_pred = y_pred if pred_labels else np.moveaxis(y_pred, axis, -1)
    grid = y_pred.shape if pred_labels else y_pred.shape[:-1]
    spatial_dims = len(spacing)
    if len(grid) < spatial_dims or int(np.prod(grid[: len(grid) - spatial_dims])) != 1:
        raise InputError(
            path,
            f"has voxel grid {grid}: boundary metrics measure one volume of {spatial_dims} "
            "spatial axes per case (leading axes of length 1 are allowed).",
        )
    spatial = grid[len(grid) - spatial_dims :]
    values = surface_metrics(
        y_true.reshape((1, *spatial, num_classes)),
        y_pred.reshape((1, *spatial, *y_pred.shape[len(grid) :])),
        1.0 if request.tolerance is None else request.tolerance,
        percentile=request.percentile,
        spacing=spacing,
        threshold=threshold,
        num_classes=num_classes,
        spatial_dims=spatial_dims,
    )
    fields = {**_FIELDS, "nsd": "surface_dice"}
    return {
        name: np.asarray(values[fields[name]], np.float64).reshape(-1) for name in request.measures
    }
