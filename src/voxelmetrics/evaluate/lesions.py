"""Lesion-wise evaluation: connected components of truth and prediction, matched by a named
convention, scored per lesion and per class.

Host code (numpy, `cc3d` for the components, scipy for the BraTS dilation). One case and one
class cost one pass over the volume per step (components of each side, one table of the
voxel overlaps of every (truth, prediction) pair, volumes, boxes and centroids from one
`cc3d.statistics` call each) plus work proportional to the lesions: every boundary measure
runs on the pair's bounding box only. Nothing loops over the volume once per lesion.

Conventions (`--lesions`), each named after the tool whose definitions it reproduces; what a
truth lesion is matched to, and the prediction its Dice and boundary are measured against:

- `panoptica`: the one predicted component of IoU >= the threshold, chosen greedily by IoU
  (panoptica 2.1 `NaiveThresholdMatching`); that component.
- `brats2023`: every predicted component touching the truth lesion dilated by an
  18-connected structure (BraTS 2023); the union of those components.
- `overlap`: every predicted component sharing a voxel with it; their union.
"""

import dataclasses
import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from voxelmetrics.defaults import CONNECTIVITIES, SURFACE_CONVENTION
from voxelmetrics.defaults import CONNECTIVITY as DEFAULT_CONNECTIVITY
from voxelmetrics.defaults import MATCH_THRESHOLD as DEFAULT_MATCH_THRESHOLD
from voxelmetrics.evaluate.surface import spatial_grid
from voxelmetrics.evaluate.whole_case import WholeCase, read_case
from voxelmetrics.ops._host import on_host
from voxelmetrics.ops._options import check_choice, check_fraction, threshold_per_class
from voxelmetrics.ops.counting import predicted

CONVENTIONS = ("panoptica", "brats2023", "overlap")
DEFAULT_CONVENTION = "overlap"  # a LesionRequest made in code; the CLI asks for one
# BraTS 2023 per sub-challenge: (dilation iterations of the 18-connected structure, truth
# lesions at or below this volume in mm^3 are left out of the scores). From the BraTS 2023
# metrics code (`get_challenge_parameters`).
BRATS2023_CHALLENGES = {
    "GLI": (3, 50.0),
    "SSA": (3, 50.0),
    "MEN": (1, 50.0),
    "PED": (3, 50.0),
    "MET": (1, 2.0),
}
DEFAULT_BRATS2023_CHALLENGE = "GLI"
# BraTS 2023: the HD95 of a missed lesion and of a false-positive lesion in the lesion-wise
# mean (the code replaces inf by 374, the diagonal of its 240 x 240 x 155 mm volume).
BRATS2023_MISSING_HD95 = 374.0
# The boundary convention of each lesion convention's per-lesion HD95 / ASSD: panoptica's
# own (MedPy's boundary and HD95, its own ASSD: `panoptica_pair_measures`); BraTS 2023
# calls DeepMind's `surface-distance` (surfels weighted by area). `overlap` uses the
# caller's `--surface-convention`.
BOUNDARY_CONVENTIONS = {"panoptica": "panoptica", "brats2023": "deepmind"}
NAN = float("nan")


@dataclasses.dataclass(frozen=True)
class MinVolume:
    """A lesion-size floor: lesions of volume at most `value` are dropped (the BraTS rule).

    Attributes:
        value: the floor, >= 0; 0 keeps every lesion.
        unit: `"voxels"` or `"mm3"` (voxel count times the product of the spacing).
    """

    value: float = 0.0
    unit: str = "voxels"

    def kept(self, voxels: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
        """`[n] bool`: which of the lesions of `voxels` voxels each are kept (volume > value).

        Example:
            >>> MinVolume(2.0, "mm3").kept(np.array([1, 2, 3]), (1.0, 1.0, 1.5)).tolist()
            [False, True, True]
        """
        return volumes_in(voxels, spacing, self.unit) > self.value


def volumes_in(voxels: np.ndarray, spacing: Sequence[float], unit: str) -> np.ndarray:
    """Voxel counts in `unit`: themselves (`"voxels"`) or times the voxel volume (`"mm3"`)."""
    voxels = np.asarray(voxels, np.float64)
    return voxels * float(np.prod(spacing)) if unit == "mm3" else voxels


def parse_min_volume(text: str) -> tuple[MinVolume, MinVolume]:
    """`--min-lesion-volume`: `"N"`, `"Nmm3"`, or `"true=N[mm3],pred=M[mm3]"` -> (truth, pred).

    One value applies to both sides; a side not named keeps every lesion.

    Example:
        >>> parse_min_volume("true=10mm3,pred=3")
        (MinVolume(value=10.0, unit='mm3'), MinVolume(value=3.0, unit='voxels'))
    """
    sides = {"true": MinVolume(), "pred": MinVolume()}
    items = [part.strip() for part in text.split(",")]
    named = [item.partition("=") for item in items]
    if len(items) == 1 and not named[0][1]:
        one = _one_volume(items[0], text)
        return one, one
    seen = set()
    for side, equals, value in named:
        if side not in sides or not equals or side in seen:
            raise ValueError(
                f"--min-lesion-volume {text!r}: expected N, Nmm3, or true=N[mm3],pred=M[mm3] "
                f"(each side once); got {side + equals + value!r}."
            )
        seen.add(side)
        sides[side] = _one_volume(value, text)
    return sides["true"], sides["pred"]


def _one_volume(text: str, whole: str) -> MinVolume:
    match = re.fullmatch(r"\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*(mm3)?\s*", text)
    if match is None:
        raise ValueError(
            f"--min-lesion-volume {whole!r}: a volume is a number >= 0 of voxels, or of mm^3 "
            f"with the suffix mm3 (e.g. 10 or 12.5mm3); got {text!r}."
        )
    return MinVolume(float(match.group(1)), "mm3" if match.group(2) else "voxels")


def parse_convention(text: str) -> tuple[str, str | None]:
    """`--lesions`: `"panoptica"`, `"overlap"`, `"brats2023"` or `"brats2023:MET"`.

    Returns `(convention, challenge)`; the BraTS sub-challenge (GLI, SSA, MEN, PED, MET)
    defaults to GLI and is None for the other conventions.

    Example:
        >>> parse_convention("brats2023:MET")
        ('brats2023', 'MET')
    """
    name, _, challenge = text.strip().partition(":")
    if name not in CONVENTIONS or (challenge and name != "brats2023"):
        raise ValueError(
            f"--lesions {text!r}: expected one of {', '.join(CONVENTIONS)} "
            f"(brats2023 optionally :{'|'.join(BRATS2023_CHALLENGES)})."
        )
    if name != "brats2023":
        return name, None
    challenge = challenge or DEFAULT_BRATS2023_CHALLENGE
    if challenge not in BRATS2023_CHALLENGES:
        raise ValueError(
            f"--lesions {text!r}: the BraTS 2023 sub-challenge is one of "
            f"{', '.join(BRATS2023_CHALLENGES)}; got {challenge!r}."
        )
    return name, challenge


@dataclasses.dataclass(frozen=True)
class LesionRequest:
    """How lesions are found, filtered and matched.

    Attributes:
        convention: one of `CONVENTIONS`.
        connectivity: 6, 18 or 26 (face, edge, corner neighbours) for the components.
        min_true, min_pred: size floors of truth and predicted lesions. A predicted lesion
            below its floor is erased before matching (every convention). A truth lesion
            below its floor is erased before matching in `panoptica` and `overlap`; in
            `brats2023` it stays in the matching (a prediction touching it is no false
            positive) and is left out of the counts and means, as BraTS does. None takes the
            convention's default: nothing dropped, or the BraTS sub-challenge's mm^3 floor
            for `brats2023` truth.
        match_threshold: `panoptica`'s IoU threshold (a pair matches at IoU >= it).
        challenge: the BraTS 2023 sub-challenge (`brats2023` only).
        surface_convention: the boundary convention of `overlap`'s per-lesion HD95 / ASSD.
    """

    convention: str = DEFAULT_CONVENTION
    connectivity: int = DEFAULT_CONNECTIVITY
    min_true: MinVolume | None = None
    min_pred: MinVolume | None = None
    match_threshold: float = DEFAULT_MATCH_THRESHOLD
    challenge: str | None = None
    surface_convention: str = SURFACE_CONVENTION

    def __post_init__(self):
        check_choice("lesion convention", self.convention, CONVENTIONS)
        check_choice("connectivity", self.connectivity, CONNECTIVITIES)
        check_fraction("match_threshold (an IoU)", self.match_threshold)
        if self.convention == "brats2023" and self.challenge is None:
            object.__setattr__(self, "challenge", DEFAULT_BRATS2023_CHALLENGE)

    @property
    def truth_floor(self) -> MinVolume:
        """The truth size floor in force (the BraTS sub-challenge's for `brats2023`)."""
        if self.min_true is not None:
            return self.min_true
        if self.convention == "brats2023":
            return MinVolume(BRATS2023_CHALLENGES[self.challenge][1], "mm3")
        return MinVolume()

    @property
    def boundary_convention(self) -> str:
        """The boundary convention of the per-lesion HD95 and ASSD."""
        return BOUNDARY_CONVENTIONS.get(self.convention, self.surface_convention)

    def describe(self) -> dict:
        """The request as the report records it (every constant in force)."""
        out = {
            "convention": self.convention,
            "connectivity": self.connectivity,
            "min_lesion_volume_true": dataclasses.asdict(self.truth_floor),
            "min_lesion_volume_pred": dataclasses.asdict(self.min_pred or MinVolume()),
            "boundary_convention": self.boundary_convention,
        }
        if self.convention == "panoptica":
            out["match_threshold"] = self.match_threshold
        if self.convention == "brats2023":
            out["challenge"] = self.challenge
            out["dilation_iterations"] = BRATS2023_CHALLENGES[self.challenge][0]
            out["missing_hd95"] = BRATS2023_MISSING_HD95
        return out


# ---------------------------------------------------------------------------- components


@dataclasses.dataclass(frozen=True)
class Components:
    """The connected components of one mask.

    Attributes:
        labels: `[*spatial]` int, 0 outside every component, `1..n` inside.
        voxels: `[n + 1]` int64 voxel count of each id (index 0: the background).
        boxes: `n + 1` bounding boxes (tuples of slices; index 0: the whole volume).
        centroids: `[n + 1, ndim]` float64 mean voxel index of each id.
    """

    labels: np.ndarray
    voxels: np.ndarray
    boxes: list
    centroids: np.ndarray

    @property
    def n(self) -> int:
        """The number of components."""
        return len(self.voxels) - 1


def _volume3d(mask: np.ndarray) -> np.ndarray:
    """`mask` as 3D (`cc3d` labels 3D; a 2D image is one slice, so 26 -> 8 and 6 -> 4)."""
    if mask.ndim > 3 or mask.ndim < 1:
        raise ValueError(f"lesions are found in 1D to 3D volumes; got shape {mask.shape}.")
    return mask.reshape((1,) * (3 - mask.ndim) + mask.shape)


def components(mask: np.ndarray, *, connectivity: int = DEFAULT_CONNECTIVITY) -> Components:
    """Connected components of a boolean mask, with their sizes, boxes and centroids.

    Two passes over the volume: `cc3d.connected_components` (the library panoptica and the
    BraTS code use, so component ids are theirs) and one `cc3d.statistics`.

    Args:
        mask: `[*spatial]` bool (1 to 3 axes).
        connectivity: 6, 18 or 26.

    Example:
        >>> found = components(np.array([[1, 0, 1], [0, 0, 1]], bool), connectivity=6)
        >>> found.n, found.voxels.tolist()
        (2, [3, 1, 2])
    """
    import cc3d

    check_choice("connectivity", connectivity, CONNECTIVITIES)
    shape = mask.shape
    labels = cc3d.connected_components(_volume3d(np.asarray(mask, bool)), connectivity=connectivity)
    return _described(labels.reshape(shape))


def _described(labels: np.ndarray) -> Components:
    """`Components` of a label array whose ids are `1..max` (each present), from its
    foreground voxels alone.

    One pass finds the foreground (`flatnonzero`); the sizes, boxes and centroids are then
    work proportional to the lesions' voxels (`_foreground_statistics`), not to the volume.
    Id 0 (the background) gets the voxels left over, the whole volume as its box and the
    mean index of the voxels left over as its centroid (from the closed-form sum of every
    index), as `cc3d.statistics` measures them; an id without voxels gets the whole volume
    and NaN.
    """
    flat = labels.reshape(-1)
    where = np.flatnonzero(flat > 0)  # through a bool mask: 7x faster than on integer ids
    ids = flat[where].astype(np.intp)
    n = int(ids.max()) if ids.size else 0
    coords = np.stack(np.unravel_index(where, labels.shape), -1)
    voxels, lo, hi, sums = _foreground_statistics(ids, coords, n)
    voxels[0] = labels.size - where.size
    every_index = labels.size * (np.asarray(labels.shape, np.float64) - 1) / 2
    sums[0] = every_index - sums[1:].sum(axis=0)
    whole = tuple(slice(0, k) for k in labels.shape)
    boxes = [whole] + [
        tuple(slice(int(a), int(b) + 1) for a, b in zip(lo[i], hi[i], strict=True))
        if voxels[i]
        else whole
        for i in range(1, n + 1)
    ]
    with np.errstate(invalid="ignore", divide="ignore"):
        centroids = sums / voxels[:, None]
    return Components(labels, voxels, boxes, centroids)


def _foreground_statistics(ids: np.ndarray, coords: np.ndarray, n: int):
    """Per id `0..n` of the foreground voxels (`ids [F]`, `coords [F, k]`): voxel counts
    `[n + 1]` int64, box corners `lo, hi [n + 1, k]` (inclusive) and coordinate sums
    `[n + 1, k]` float64; one sort of the `F` voxels by id."""
    k = coords.shape[1]
    voxels = np.bincount(ids, minlength=n + 1).astype(np.int64)
    sums = np.stack([np.bincount(ids, coords[:, a], n + 1) for a in range(k)], -1)
    lo = np.zeros((n + 1, k), np.int64)
    hi = np.zeros((n + 1, k), np.int64)
    if len(ids):
        order = np.argsort(ids, kind="stable")
        present = np.flatnonzero(voxels[1:]) + 1
        starts = np.concatenate([[0], np.cumsum(voxels[present])[:-1]])
        ordered = coords[order]
        lo[present] = np.minimum.reduceat(ordered, starts, axis=0)
        hi[present] = np.maximum.reduceat(ordered, starts, axis=0)
    return voxels, lo, hi, sums


def kept_only(found: Components, keep: np.ndarray) -> Components:
    """`found` without the components where `keep [n]` is False, renumbered `1..n'` in order.

    One pass over the volume (a lookup table), skipped when every component is kept.
    """
    keep = np.asarray(keep, bool)
    if keep.all():
        return found
    table = np.zeros(found.n + 1, found.labels.dtype)
    table[1:][keep] = np.arange(1, int(keep.sum()) + 1, dtype=found.labels.dtype)
    rows = np.concatenate([[True], keep])
    voxels = found.voxels[rows].copy()
    voxels[0] += int(found.voxels[1:][~keep].sum())
    boxes = [box for box, row in zip(found.boxes, rows, strict=False) if row]
    return Components(table[found.labels], voxels, boxes, found.centroids[rows])


def overlap_table(
    true_labels: np.ndarray, pred_labels: np.ndarray, n_true: int, n_pred: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The voxel overlap of every pair of components that share at least one voxel.

    One pass over the volume (the predicted voxels), then the pair id `p * (n_true + 1) + t`
    of every voxel inside both, counted by one `bincount` (or `unique` when the table of
    all pairs would be large).

    Returns:
        `(t, p, count)`, each `[pairs]` int64, ordered by prediction id, then truth id (the
        order panoptica lists overlapping pairs in, which its greedy matching breaks ties by).

    Example:
        >>> t = np.array([1, 1, 2, 0]); p = np.array([1, 2, 2, 2])
        >>> [a.tolist() for a in overlap_table(t, p, 2, 2)]
        [[1, 1, 2], [1, 2, 2], [1, 1, 1]]
    """
    where = np.flatnonzero(pred_labels.reshape(-1) > 0)  # one pass; then the predicted voxels
    pred_ids = pred_labels.reshape(-1)[where]
    true_ids = true_labels.reshape(-1)[where]
    inside = true_ids > 0
    keys = pred_ids[inside].astype(np.int64) * (n_true + 1) + true_ids[inside]
    if (n_true + 1) * (n_pred + 1) <= max(4 * keys.size, 2**20):
        counts = np.bincount(keys, minlength=(n_true + 1) * (n_pred + 1))
        keys = np.flatnonzero(counts)
        counts = counts[keys]
    else:
        keys, counts = np.unique(keys, return_counts=True)
    return keys % (n_true + 1), keys // (n_true + 1), counts.astype(np.int64)


# ---------------------------------------------------------------------------- matching


@dataclasses.dataclass(frozen=True)
class Matching:
    """Which predicted components each truth lesion is scored against.

    Attributes:
        members: `[n_true + 1]` list; `members[t]` the sorted prediction ids matched to truth
            lesion t (empty: missed). Index 0 unused.
        intersection: `[n_true + 1]` int64 voxels shared by lesion t and its members' union.
        pred_matched: `[n_pred + 1]` bool, a predicted component matched to some truth lesion
            (its complement, but index 0, are the false positives).
        scored: `[n_true + 1]` bool, the truth lesions that count (all but the BraTS ones at
            or below the floor). Index 0 False.
    """

    members: list
    intersection: np.ndarray
    pred_matched: np.ndarray
    scored: np.ndarray


def match_panoptica(
    t: np.ndarray,
    p: np.ndarray,
    count: np.ndarray,
    true_voxels: np.ndarray,
    pred_voxels: np.ndarray,
    *,
    threshold: float = DEFAULT_MATCH_THRESHOLD,
) -> Matching:
    r"""panoptica's `NaiveThresholdMatching`: one-to-one, greedy by IoU, IoU >= threshold.

    Every overlapping pair's :math:`IoU = |T \cap P| / (|T| + |P| - |T \cap P|)`, sorted
    high to low (ties in the order of `overlap_table`, as panoptica's stable sort); a pair
    is matched when neither side is yet and its IoU is at least `threshold` (panoptica's
    default non-strict comparison). At a threshold above 0.5 no lesion can have two
    candidates, so the order matters only below it.

    Args:
        t, p, count: `overlap_table`'s pairs.
        true_voxels, pred_voxels: `[n + 1]` component sizes.
    """
    iou = count / (true_voxels[t] + pred_voxels[p] - count).astype(np.float64)
    members = [[] for _ in true_voxels]
    intersection = np.zeros(len(true_voxels), np.int64)
    pred_matched = np.zeros(len(pred_voxels), bool)
    for k in np.argsort(-iou, kind="stable"):
        if iou[k] < threshold:
            break
        if pred_matched[p[k]] or members[t[k]]:
            continue
        members[t[k]] = [int(p[k])]
        intersection[t[k]] = count[k]
        pred_matched[p[k]] = True
    scored = np.ones(len(true_voxels), bool)
    scored[0] = False
    return Matching(members, intersection, pred_matched, scored)


def match_touching(
    t_touch: np.ndarray,
    p_touch: np.ndarray,
    t: np.ndarray,
    count: np.ndarray,
    n_true: int,
    n_pred: int,
    scored: np.ndarray | None = None,
) -> Matching:
    """Each truth lesion matched to every prediction that touches it (`brats2023`, `overlap`).

    Args:
        t_touch, p_touch: the pairs that touch (`overlap`: the overlapping pairs;
            `brats2023`: the pairs overlapping the dilated truth lesion).
        t, count: `overlap_table`'s pairs of the lesions themselves (for the Dice).
        scored: `[n_true + 1]` bool, the truth lesions that count (default all).
    """
    members = [[] for _ in range(n_true + 1)]
    for a, b in zip(t_touch.tolist(), p_touch.tolist(), strict=False):
        members[a].append(b)
    for m in members:
        m.sort()
    pred_matched = np.zeros(n_pred + 1, bool)
    pred_matched[p_touch] = True
    # Lesion t's overlap with the union of its members is the sum of its pairs' overlaps:
    # a prediction overlapping the lesion touches it (and its dilation) by definition.
    touching = np.bincount(t, weights=count, minlength=n_true + 1).astype(np.int64)
    if scored is None:
        scored = np.ones(n_true + 1, bool)
    scored = np.asarray(scored, bool).copy()
    scored[0] = False
    return Matching(members, touching, pred_matched, scored)


def dilated(mask: np.ndarray, iterations: int) -> np.ndarray:
    """`mask` dilated `iterations` times by the 18-connected structure (BraTS 2023), the
    outside of the volume empty. scipy's `binary_dilation` is the BraTS code's own and
    handles any structure and iteration count; `cc3d` has no dilation."""
    from scipy import ndimage

    if iterations == 0 or not mask.any():
        return mask
    structure = ndimage.generate_binary_structure(mask.ndim, min(2, mask.ndim))
    return ndimage.binary_dilation(mask, structure=structure, iterations=iterations)


# ---------------------------------------------------------------------------- one class


@dataclasses.dataclass(frozen=True)
class ClassLesions:
    """One case's lesions of one class, matched.

    Attributes:
        counts: `COUNT_FIELDS` and `SUM_FIELDS` (sum-mergeable over cases).
        truth: one row per truth lesion (`LESION_COLUMNS` without case and class).
        pred: one row per predicted lesion.
    """

    counts: dict
    truth: list
    pred: list


# Additive per-class fields: summed over cases they give the pooled numbers.
COUNT_FIELDS = (
    "n_true",  # truth lesions that count
    "n_pred",  # predicted lesions
    "tp",  # truth lesions matched (detected)
    "fn",  # truth lesions missed
    "tp_pred",  # predicted lesions matched to a truth lesion
    "fp",  # predicted lesions matched to none
)
SUM_FIELDS = (
    "dice_sum",  # Dice of the matched truth lesions
    "iou_sum",
    "hd95_sum",
    "assd_sum",
    "penalised_hd95_sum",  # brats2023: every counted lesion's HD95, 374 for a missed one
)
FIELDS = COUNT_FIELDS + SUM_FIELDS
# The per-lesion table's columns (the --per-lesion CSV adds case and class in front).
LESION_COLUMNS = (
    "side",
    "lesion",
    "voxels",
    "volume_mm3",
    "centroid",
    "matched",
    "scored",
    "dice",
    "iou",
    "hd95",
    "assd",
    "score",
)

# A boundary function: (truth mask, pred mask, spacing, convention) -> (hd95, assd).
Boundary = Callable[[np.ndarray, np.ndarray, Sequence[float], str], tuple[float, float]]


def boundary_of_pair(truth, pred, spacing, convention) -> tuple[float, float]:
    """HD95 and ASSD of one cropped pair through the offline boundary path
    (`evaluate/boundary.py`); `panoptica` through `panoptica_pair_measures`."""
    if convention == "panoptica":
        return panoptica_pair_measures(truth, pred, spacing)
    from voxelmetrics.evaluate.boundary import mask_measures

    values = mask_measures(truth, pred, spacing=spacing, convention=convention, percentile=95.0)
    return float(values["hausdorff"]), float(values["average_surface_distance"])


def panoptica_pair_measures(truth, pred, spacing) -> tuple[float, float]:
    r"""panoptica 2.1's HD95 and ASSD of one pair of non-empty masks.

    Its boundary is MedPy's (a voxel with a face neighbour outside the mask or the volume)
    and its HD95 MedPy's (the 95th percentile, interpolated, of both directions' distances
    pooled). Its ASSD is the mean of the two directed means
    :math:`(\bar d(\partial T \to \partial P) + \bar d(\partial P \to \partial T)) / 2`,
    not MedPy 0.5's mean of the pooled distances: the two differ when the boundaries differ
    in size.

    Example:
        >>> t = np.zeros((1, 6), bool); t[0, 1] = True
        >>> p = np.zeros((1, 6), bool); p[0, 1:5] = True
        >>> panoptica_pair_measures(t, p, (1.0, 1.0))[1]  # (0 + (0 + 1 + 2 + 3) / 4) / 2
        0.75
    """
    from voxelmetrics.evaluate.boundary import mask_boundary, nearest_distances
    from voxelmetrics.ops import surface_rules
    from voxelmetrics.ops._host import on_host

    t_pts, p_pts = mask_boundary(truth), mask_boundary(pred)
    d_true = nearest_distances(t_pts, p_pts, spacing)
    d_pred = nearest_distances(p_pts, t_pts, spacing)
    with on_host():
        values = surface_rules.boundary_measures(
            d_pred,
            np.ones_like(d_pred),
            d_true,
            np.ones_like(d_true),
            convention="medpy",
            percentile=95.0,
            tolerance=1.0,
        )
        # panoptica's ASSD is the mean of the directed means: the deepmind convention's
        # formula, here with every boundary voxel of weight 1
        assd = surface_rules.average_surface_distance(
            d_pred, np.ones_like(d_pred), d_true, np.ones_like(d_true), convention="deepmind"
        )
    return float(np.asarray(values["hausdorff"])), float(np.asarray(assd))


def _union_box(boxes: Sequence[tuple]) -> tuple:
    return tuple(
        slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes))
        for a in range(len(boxes[0]))
    )


def class_lesions(
    truth: np.ndarray,
    pred: np.ndarray,
    request: LesionRequest,
    *,
    spacing: Sequence[float] | None = None,
    boundary: Boundary | None = boundary_of_pair,
    scores: np.ndarray | None = None,
) -> ClassLesions:
    """Find, match and score the lesions of one class in one case.

    Args:
        truth, pred: `[*spatial]` bool masks of one class (1 to 3 axes).
        request: the convention and its options.
        spacing: voxel size per axis (volumes in mm^3, boundary distances); default 1.
        boundary: HD95 / ASSD of a cropped pair (None skips them: NaN).
        scores: `[*spatial]` the probabilities `pred` was thresholded from, or None: each
            predicted lesion's `score` is its maximum, each truth lesion's the largest of
            its matches' (the FROC's lesion scores; NaN without scores or match).

    Returns:
        `ClassLesions`: the additive counts, a row per truth and per predicted lesion.

    Example:
        >>> t = np.zeros((6, 6), bool); t[1:3, 1:3] = True; t[5, 5] = True
        >>> p = np.zeros((6, 6), bool); p[1:3, 1:4] = True; p[4, 0] = True
        >>> out = class_lesions(t, p, LesionRequest("overlap"), boundary=None)
        >>> [out.counts[k] for k in ("tp", "fn", "fp")]
        [1, 1, 1]
    """
    truth, pred = np.asarray(truth, bool), np.asarray(pred, bool)
    if truth.shape != pred.shape:
        raise ValueError(f"truth {truth.shape} and prediction {pred.shape} differ in shape.")
    spacing = tuple(float(s) for s in (spacing or (1.0,) * truth.ndim))
    found_p = components(pred, connectivity=request.connectivity)
    found_p = kept_only(
        found_p, (request.min_pred or MinVolume()).kept(found_p.voxels[1:], spacing)
    )
    floor = request.truth_floor
    if request.convention == "brats2023":
        # BraTS: truth lesions whose dilations touch are one lesion; its dilation is exactly
        # its component of the dilated truth (every dilated voxel is joined to the lesion
        # voxel it came from), so one labelling of the dilated truth gives every lesion's
        # dilation, and one table of its overlaps every touching prediction.
        iterations = BRATS2023_CHALLENGES[request.challenge][0]
        grown = components(dilated(truth, iterations), connectivity=request.connectivity)
        found_t = _described(np.where(truth, grown.labels, 0))
        t_touch, p_touch, _ = overlap_table(grown.labels, found_p.labels, grown.n, found_p.n)
        t, _, count = overlap_table(found_t.labels, found_p.labels, found_t.n, found_p.n)
        scored = np.concatenate([[False], floor.kept(found_t.voxels[1:], spacing)])
        matching = match_touching(t_touch, p_touch, t, count, found_t.n, found_p.n, scored)
    else:
        found_t = components(truth, connectivity=request.connectivity)
        found_t = kept_only(found_t, floor.kept(found_t.voxels[1:], spacing))
        t, p, count = overlap_table(found_t.labels, found_p.labels, found_t.n, found_p.n)
        if request.convention == "panoptica":
            matching = match_panoptica(
                t, p, count, found_t.voxels, found_p.voxels, threshold=request.match_threshold
            )
        else:
            matching = match_touching(t, p, t, count, found_t.n, found_p.n)
    return _scored(found_t, found_p, matching, request, spacing, boundary, scores)


def component_maxima(scores: np.ndarray | None, found: Components) -> np.ndarray:
    """float64 `[n + 1]`: each component's largest score (NaN without scores; index 0 NaN).

    One pass (scipy's labelled `maximum`: `cc3d.statistics` has no per-label maximum).
    """
    out = np.full(found.n + 1, NAN)
    if scores is not None and found.n:
        from scipy import ndimage

        index = np.arange(1, found.n + 1)
        out[1:] = ndimage.maximum(np.asarray(scores, np.float64), found.labels, index)
    return out


def _scored(found_t, found_p, matching, request, spacing, boundary, scores) -> ClassLesions:
    """Per-lesion Dice, IoU, HD95, ASSD and the class's additive counts."""
    sums = dict.fromkeys(SUM_FIELDS, 0.0)
    truth_rows, voxel_mm3 = [], float(np.prod(spacing))
    maxima = component_maxima(scores, found_p)
    penalty = BRATS2023_MISSING_HD95 if request.convention == "brats2023" else math.inf
    for lesion in range(1, found_t.n + 1):
        members = matching.members[lesion]
        size_t = int(found_t.voxels[lesion])
        size_p = int(found_p.voxels[members].sum()) if members else 0
        shared = int(matching.intersection[lesion])
        dice = 2.0 * shared / (size_t + size_p)
        iou = shared / (size_t + size_p - shared)
        hd95 = assd = penalty
        if members and boundary is not None:
            box = _union_box([found_t.boxes[lesion]] + [found_p.boxes[m] for m in members])
            hd95, assd = boundary(
                found_t.labels[box] == lesion,
                np.isin(found_p.labels[box], members),
                spacing,
                request.boundary_convention,
            )
        elif members:
            hd95 = assd = NAN
        scored = bool(matching.scored[lesion])
        if scored and members:
            for name, value in (("dice", dice), ("iou", iou), ("hd95", hd95), ("assd", assd)):
                sums[f"{name}_sum"] += value
        if scored:
            sums["penalised_hd95_sum"] += hd95
        truth_rows.append(
            _row(
                "true",
                lesion,
                size_t,
                voxel_mm3,
                found_t.centroids[lesion],
                members,
                scored,
                dice,
                iou,
                hd95,
                assd,
                float(maxima[members].max()) if members else NAN,
            )
        )
    matched_by = [[] for _ in range(found_p.n + 1)]
    for lesion in range(1, found_t.n + 1):
        for m in matching.members[lesion]:
            matched_by[m].append(lesion)
    pred_rows = [
        _row(
            "pred",
            m,
            int(found_p.voxels[m]),
            voxel_mm3,
            found_p.centroids[m],
            matched_by[m],
            True,
            NAN,
            NAN,
            NAN,
            NAN,
            maxima[m],
        )
        for m in range(1, found_p.n + 1)
    ]
    scored_rows = matching.scored[1:]
    detected = np.array([bool(m) for m in matching.members[1:]], bool)
    tp_pred = int(matching.pred_matched[1:].sum())
    counts = {
        "n_true": int(scored_rows.sum()),
        "n_pred": found_p.n,
        "tp": int((detected & scored_rows).sum()),
        "fn": int((~detected & scored_rows).sum()),
        "tp_pred": tp_pred,
        "fp": found_p.n - tp_pred,
        **sums,
    }
    return ClassLesions(counts, truth_rows, pred_rows)


def _row(side, lesion, voxels, voxel_mm3, centroid, matched, scored, dice, iou, hd95, assd, score):
    return {
        "side": side,
        "lesion": int(lesion),
        "voxels": int(voxels),
        "volume_mm3": voxels * voxel_mm3,
        "centroid": tuple(float(c) for c in centroid),
        "matched": tuple(int(m) for m in matched),
        "scored": bool(scored),
        "dice": float(dice),
        "iou": float(iou),
        "hd95": float(hd95),
        "assd": float(assd),
        "score": float(score),
    }


# ---------------------------------------------------------------------------- scores


def _ratio(num: float, den: float) -> float:
    return num / den if den else NAN


def lesion_scores(counts: dict, convention: str, *, cases: int = 1) -> dict[str, float]:
    r"""The lesion-wise scores of additive counts (one case, or summed over `cases`).

    - recall :math:`= tp / (tp + fn)`, precision :math:`= tp_{pred} / (tp_{pred} + fp)`,
      F1 their harmonic mean, 0 when lesions exist on either side but none matched, NaN
      when there are none (for `panoptica` F1 is its RQ :math:`tp / (tp + (fp + fn) / 2)`);
    - `fp_per_case` :math:`= fp / cases`;
    - `lesion_dice`: the Dice of every counted truth lesion (0 if missed) and of every
      false positive (0), averaged: :math:`\sum Dice / (n_{true} + fp)`; `brats2023`: 1
      when neither side has a lesion (BraTS), NaN otherwise;
    - `lesion_hd95`: `brats2023` the same mean with 374 for each missed and false-positive
      lesion (0 when neither has one); otherwise the mean over matched truth lesions
      (inf when there are lesions but no match, NaN when there are none);
    - `panoptica` adds RQ, SQ (mean IoU of the matched pairs), `sq_dice`, PQ = SQ RQ,
      `pq_dice`, `sq_hd95`, `sq_assd` (panoptica's zero-TP rules: SQ and Dice-SQ 0, the
      distances inf, everything NaN without lesions).

    Example:
        >>> counts = dict(n_true=2, n_pred=2, tp=1, fn=1, tp_pred=1, fp=1, dice_sum=0.8,
        ...               iou_sum=0.6, hd95_sum=1.0, assd_sum=0.5, penalised_hd95_sum=375.0)
        >>> round(lesion_scores(counts, "panoptica")["pq"], 6)
        0.3
    """
    c = {k: float(counts[k]) for k in FIELDS}
    none = c["n_true"] + c["n_pred"] == 0
    recall = _ratio(c["tp"], c["tp"] + c["fn"])
    precision = _ratio(c["tp_pred"], c["tp_pred"] + c["fp"])
    if none:
        f1 = NAN
    elif c["tp"] + c["tp_pred"] == 0:
        f1 = 0.0
    else:
        f1 = 2.0 * precision * recall / (precision + recall)
    scored = c["n_true"] + c["fp"]
    out = {
        "recall": recall,
        "precision": precision,
        "f1": f1,
        "fp_per_case": c["fp"] / cases,
        "lesion_dice": _ratio(c["dice_sum"], scored),
    }

    def matched_mean(name: str, zero_tp: float) -> float:
        return NAN if none else (c[f"{name}_sum"] / c["tp"] if c["tp"] else zero_tp)

    if convention == "brats2023":
        out["lesion_dice"] = 1.0 if scored == 0 else out["lesion_dice"]
        hd95 = c["penalised_hd95_sum"] + BRATS2023_MISSING_HD95 * c["fp"]
        out["lesion_hd95"] = _ratio(hd95, scored) if scored else 0.0
    else:
        out["lesion_hd95"] = matched_mean("hd95", math.inf)
    if convention == "panoptica":
        rq = NAN if none else c["tp"] / (c["tp"] + 0.5 * c["fp"] + 0.5 * c["fn"])
        sq, sq_dice = matched_mean("iou", 0.0), matched_mean("dice", 0.0)
        out.update(
            rq=rq,
            sq=sq,
            sq_dice=sq_dice,
            pq=sq * rq,
            pq_dice=sq_dice * rq,
            sq_hd95=matched_mean("hd95", math.inf),
            sq_assd=matched_mean("assd", math.inf),
        )
        out["f1"] = rq
    return out


def score_names(convention: str) -> tuple[str, ...]:
    """The names `lesion_scores` returns for `convention`, in order."""
    base = ("recall", "precision", "f1", "fp_per_case", "lesion_dice", "lesion_hd95")
    if convention == "panoptica":
        return (*base, "rq", "sq", "sq_dice", "pq", "pq_dice", "sq_hd95", "sq_assd")
    return base


# ---------------------------------------------------------------------------- one case


@dataclasses.dataclass
class CaseLesions:
    """One case's lesion-wise evaluation, every class.

    Attributes:
        counts: float64 `[C, len(FIELDS)]` additive counts and sums per class; a row of NaN
            for a class not evaluated (class 0, the background, of label maps).
        rows: one dict per lesion (`LESION_COLUMNS` and `class`, the class index).
    """

    counts: np.ndarray
    rows: list


def case_lesions(
    case: WholeCase,
    request: LesionRequest,
    *,
    path: str = "<array>",
    boundary: Boundary | None = boundary_of_pair,
) -> CaseLesions:
    """The lesions of every class of one case: `class_lesions` per class.

    Args:
        case: the case's arrays and how to read its classes (`whole_case.WholeCase`):
            `y_true` a label map (`true_labels`; ids outside `[0, C)` belong to no class) or
            multi-hot masks with a class axis; `y_pred` a label map (`pred_labels`), or
            scores or 0/1 masks with a class axis (a lesion voxel where
            `value >= threshold[c]`, by `ops/counting.py` `predicted`; `MASK_CUT` for
            masks). The spacing is the voxel size of the last `len(spacing)` voxel axes;
            any voxel axes before them have length 1 (a case is one volume). With a truth
            label map, class 0 is the background: not evaluated.
        request: how lesions are found, filtered and matched.
        path: the file named in errors.

    Example:
        >>> t = np.array([0, 1, 1, 0, 2]); p = np.array([1, 1, 0, 0, 2])
        >>> case = WholeCase(t, p, (1.0,), 0.5, -1, 3, true_labels=True, pred_labels=True)
        >>> out = case_lesions(case, LesionRequest("overlap"))
        >>> out.counts[1:, FIELDS.index("tp")].tolist(), np.isnan(out.counts[0]).all()
        ([1.0, 1.0], np.True_)
    """
    y_true, y_pred, axis, num_classes = case.y_true, case.y_pred, case.axis, case.num_classes
    true_labels, pred_labels, spacing = case.true_labels, case.pred_labels, case.spacing
    true_grid = y_true.shape if true_labels else np.delete(y_true.shape, axis % y_true.ndim)
    grid = tuple(int(n) for n in true_grid)
    shape = spatial_grid(grid, len(spacing), path)  # length-1 axes around them dropped
    thresholds = threshold_per_class(case.threshold, num_classes)

    def mask(y, labels, c, at):
        if labels:
            return (y == c).reshape(shape)
        values = np.take(y, c, axis=axis).reshape(shape)
        if at is None:
            return values.astype(bool)
        with on_host():
            return predicted(values, at)

    counts = np.full((num_classes, len(FIELDS)), NAN)
    rows = []
    is_scores = not pred_labels and np.issubdtype(y_pred.dtype, np.floating)
    for c in range(1 if true_labels else 0, num_classes):
        found = class_lesions(
            mask(y_true, true_labels, c, None),
            mask(y_pred, pred_labels, c, thresholds[c]),
            request,
            spacing=spacing,
            boundary=boundary,
            scores=np.take(y_pred, c, axis=axis).reshape(shape) if is_scores else None,
        )
        counts[c] = [found.counts[k] for k in FIELDS]
        rows += [{"class": c, **row} for row in (*found.truth, *found.pred)]
    return CaseLesions(counts, rows)


def request_from_json(values: dict | None) -> LesionRequest | None:
    """The `LesionRequest` of `dataclasses.asdict(request)` after a JSON round trip."""
    if values is None:
        return None
    values = dict(values)
    for side in ("min_true", "min_pred"):
        values[side] = values[side] and MinVolume(**values[side])
    return LesionRequest(**values)


def lesions_of_case(pred, true, options, threshold, spec, kind: str) -> CaseLesions:
    """`case_lesions` of one case of the engine: whole volumes read (components need the
    whole case, as boundaries do), spacing from the headers or `--spacing`."""
    case = read_case(pred, true, options, threshold, spec, kind, "--lesions")
    found = case_lesions(case, options.lesions, path=pred.path)
    found.counts = fitted_counts(found.counts, spec.num_classes)
    return found


def fitted_counts(counts: np.ndarray, num_classes: int) -> np.ndarray:
    """`[C, F]` counts cut or padded with zeros (no lesion) to `num_classes` rows."""
    out = np.zeros((num_classes, counts.shape[1]))
    keep = min(num_classes, len(counts))
    out[:keep] = counts[:keep]
    return out


def request_from_options(
    lesions: str | None,
    *,
    connectivity: int | None = None,
    min_volume: str | None = None,
    match_threshold: float | None = None,
    surface_convention: str | None = None,
) -> LesionRequest | None:
    """The `LesionRequest` of the CLI's `--lesions`, `--connectivity`,
    `--min-lesion-volume`, `--match-threshold` (None: not given).

    Raises:
        ValueError naming the option: a lesion option without `--lesions` (nothing is
        ignored silently), `--match-threshold` outside `panoptica`, a bad value.

    Example:
        >>> request_from_options("panoptica", match_threshold=0.3).match_threshold
        0.3
    """
    given = {
        "--connectivity": connectivity,
        "--min-lesion-volume": min_volume,
        "--match-threshold": match_threshold,
    }
    if lesions is None:
        named = [k for k, v in given.items() if v is not None]
        if named:
            raise ValueError(f"{', '.join(named)} needs --lesions panoptica|brats2023|overlap.")
        return None
    convention, challenge = parse_convention(lesions)
    if match_threshold is not None and convention != "panoptica":
        raise ValueError(
            f"--match-threshold is panoptica's IoU threshold; --lesions {lesions} matches by "
            "contact."
        )
    if match_threshold is not None:
        check_fraction("--match-threshold (an IoU)", match_threshold)
    if connectivity is not None:
        check_choice("--connectivity", connectivity, CONNECTIVITIES)
    min_true, min_pred = parse_min_volume(min_volume) if min_volume else (None, None)
    return LesionRequest(
        convention,
        connectivity=DEFAULT_CONNECTIVITY if connectivity is None else connectivity,
        min_true=min_true,
        min_pred=min_pred,
        match_threshold=DEFAULT_MATCH_THRESHOLD if match_threshold is None else match_threshold,
        challenge=challenge,
        surface_convention=surface_convention or SURFACE_CONVENTION,
    )


# ---------------------------------------------------------------------------- FROC

# FPs per case at which the FROC's mean sensitivity (CPM, the LUNA16 summary) is read.
FROC_FP_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def froc(
    truth_scores: np.ndarray,
    matched_scores: np.ndarray,
    fp_scores: np.ndarray,
    *,
    cases: int,
) -> dict:
    r"""The FROC of lesion scores: sensitivity against false positives per case.

    A predicted lesion counts at level s when its score (its maximum probability) is
    :math:`\ge s`; a truth lesion is detected at s when one of its matches counts, so its
    score is the largest of its matches' (NaN: never matched). From one sort of each score
    set and a `searchsorted` per level, at every distinct score (descending):
    sensitivity = detected / truth lesions, `fp_per_case` = counted false positives / cases,
    precision = counted matched predictions / counted predictions, F1 their harmonic mean
    with the sensitivity. The matching is the one made at the working threshold: levels
    below it are not on the curve, and raising the level keeps every component whole.

    Args:
        truth_scores: `[T]` each counted truth lesion's score (NaN: missed).
        matched_scores: `[M]` the scores of the predicted lesions matched to a truth lesion.
        fp_scores: `[F]` the scores of the false positives.
        cases: the number of cases the lesions come from.

    Returns:
        `{"threshold", "sensitivity", "fp_per_case", "precision", "f1"}` (aligned lists),
        `best_f1` `{threshold, f1, sensitivity, fp_per_case}` (ties: the higher threshold),
        `sensitivity_at` `{rate: the highest sensitivity at <= rate FPs per case}` for
        `FROC_FP_RATES` and their mean `cpm`.

    Example:
        >>> out = froc(np.array([0.9, np.nan]), np.array([0.9]), np.array([0.4]), cases=1)
        >>> out["threshold"], out["sensitivity"], out["fp_per_case"]
        ([0.9, 0.4], [0.5, 0.5], [0.0, 1.0])
    """
    truth_scores = np.asarray(truth_scores, np.float64)
    sets = [np.sort(np.asarray(a, np.float64)) for a in (truth_scores, matched_scores, fp_scores)]
    levels = np.unique(np.concatenate([a[np.isfinite(a)] for a in sets]))[::-1]

    def at_least(sorted_scores):
        finite = sorted_scores[np.isfinite(sorted_scores)]
        return finite.size - np.searchsorted(finite, levels, side="left")

    detected, matched, false = (at_least(a) for a in sets)
    with np.errstate(invalid="ignore", divide="ignore"):
        sensitivity = (
            detected / truth_scores.size if truth_scores.size else np.full(levels.size, NAN)
        )
        precision = matched / (matched + false)
        f1 = np.where(
            sensitivity + precision > 0,
            2 * sensitivity * precision / (sensitivity + precision),
            0.0,
        )
    fp_per_case = false / cases
    out = {
        "threshold": levels.tolist(),
        "sensitivity": np.asarray(sensitivity, np.float64).tolist(),
        "fp_per_case": fp_per_case.tolist(),
        "precision": precision.tolist(),
        "f1": f1.tolist(),
    }
    defined = np.where(np.isnan(f1), -np.inf, f1)
    best = int(np.argmax(defined)) if levels.size and np.isfinite(defined).any() else None
    out["best_f1"] = (
        None
        if best is None
        else {
            "threshold": float(levels[best]),
            "f1": float(f1[best]),
            "sensitivity": float(sensitivity[best]),
            "fp_per_case": float(fp_per_case[best]),
        }
    )
    at = {}
    for rate in FROC_FP_RATES:
        within = np.asarray(sensitivity)[fp_per_case <= rate] if levels.size else np.zeros(0)
        at[str(rate)] = float(within.max()) if within.size else 0.0
    out["sensitivity_at"] = at
    out["cpm"] = float(np.mean(list(at.values()))) if truth_scores.size else NAN
    return out
