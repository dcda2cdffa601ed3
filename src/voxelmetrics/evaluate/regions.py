"""Regions (`--regions wt=1,2,3 tc=1,3 et=3`): unions of labels evaluated as classes.

BraTS and nnU-Net's region training score overlapping unions of the exclusive labels of a
label map (whole tumour, tumour core, enhancing tumour). With regions, every report of a
run (overlap counts, boundary measures, lesions) has one class per region, in the order
given. The counts come from each case's label confusion matrix (no extra pass over the
volume); boundary and lesion measures from the region masks of the whole case.
"""

import re
from collections.abc import Sequence

import numpy as np

from voxelmetrics.ops._options import check_class_names

Regions = tuple[tuple[str, tuple[int, ...]], ...]


def parse_regions(items: Sequence[str]) -> Regions:
    """`["wt=1,2,3", "tc=1,3", "et=3"]` -> `(("wt", (1, 2, 3)), ("tc", (1, 3)), ("et", (3,)))`.

    Each region one or more distinct label ids >= 0; the names (letters, digits, `_`, `-`)
    are the report's class names, so the class-name rule holds them (`check_class_names`:
    distinct, none an average's name such as "macro" or "none").

    Example:
        >>> parse_regions(["wt=1,2,3", "et=3"])
        (('wt', (1, 2, 3)), ('et', (3,)))
    """
    given = " ".join(items)
    out = []
    for item in items:
        match = re.fullmatch(r"([A-Za-z0-9_-]+)=([0-9]+(?:,[0-9]+)*)", item.strip())
        if match is None:
            raise ValueError(
                f"--regions {given}: expected NAME=ID[,ID...] per region "
                f"(e.g. wt=1,2,3 tc=1,3 et=3); got {item!r}."
            )
        labels = tuple(int(v) for v in match.group(2).split(","))
        if len(set(labels)) != len(labels):
            raise ValueError(f"--regions: region {match.group(1)} lists a label twice: {item!r}.")
        out.append((match.group(1), labels))
    if not out:
        raise ValueError("--regions: give at least one NAME=ID[,ID...].")
    try:
        check_class_names([name for name, _ in out])
    except ValueError as error:
        raise ValueError(f"--regions {given}: region names are class names: {error}") from None
    return tuple(out)


def regions_from_json(values) -> Regions | None:
    """`Regions` after a JSON round trip (lists back to tuples)."""
    return values and tuple((str(n), tuple(int(i) for i in ids)) for n, ids in values)


def membership(regions: Regions, num_labels: int) -> np.ndarray:
    """bool `[R, num_labels]`: label j belongs to region r (ids >= num_labels are absent)."""
    out = np.zeros((len(regions), num_labels), bool)
    for r, (_, labels) in enumerate(regions):
        out[r, [i for i in labels if i < num_labels]] = True
    return out


def region_counts(matrix: np.ndarray, regions: Regions) -> np.ndarray:
    r"""int64 `[R, 4]` `tp, fp, fn, tn` of each region from a `[c, c]` label confusion matrix
    (rows truth, columns prediction): with :math:`m` the region's membership vector,
    :math:`tp = m^T M m`, :math:`fp = (1 - m)^T M m`, :math:`fn = m^T M (1 - m)`, the rest tn.

    Exact int64 sums (each entry of M is one).

    Example:
        >>> m = np.array([[5, 1, 0], [0, 3, 1], [2, 0, 4]])  # labels 0, 1, 2
        >>> region_counts(m, (("fg", (1, 2)),)).tolist()
        [[8, 1, 2, 5]]
    """
    matrix = np.asarray(matrix, np.int64)
    inside = membership(regions, matrix.shape[0]).astype(np.int64)
    outside = 1 - inside
    tp = np.einsum("ri,ij,rj->r", inside, matrix, inside)
    fp = np.einsum("ri,ij,rj->r", outside, matrix, inside)
    fn = np.einsum("ri,ij,rj->r", inside, matrix, outside)
    tn = matrix.sum() - tp - fp - fn
    return np.stack([tp, fp, fn, tn], -1)


def region_masks(labels: np.ndarray, regions: Regions) -> np.ndarray:
    """bool `[*labels.shape, R]`: the masks of each region of a label map.

    Example:
        >>> region_masks(np.array([0, 1, 3]), (("tc", (1, 3)), ("et", (3,)))).tolist()
        [[False, False], [True, False], [True, True]]
    """
    return np.stack([np.isin(labels, ids) for _, ids in regions], -1)
