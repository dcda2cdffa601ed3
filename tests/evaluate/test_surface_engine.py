"""The offline engine's boundary metrics: `--surface` parsing, spacing from NIfTI headers and
`--spacing`, and one case's measures against MONAI in every layout a case file can have."""

import nibabel
import numpy as np
import pytest
import torch
from monai.metrics import (
    compute_average_surface_distance,
    compute_hausdorff_distance,
    compute_surface_dice,
)
from scipy import ndimage

from voxelmetrics.evaluate.readers import InputError, open_volume
from voxelmetrics.evaluate.surface import (
    MISSED,
    SurfaceRequest,
    case_measures,
    case_spacing,
    parse_spacing,
    parse_surface,
    read_whole,
)
from voxelmetrics.ops import normalized_surface_dice
from voxelmetrics.ops._options import check_tolerance

SPACING = (0.8, 1.0, 2.5)
REQUEST = parse_surface("hd95,assd,nsd:1.5")


def monai_measures(t: np.ndarray, p: np.ndarray, spacing) -> dict[str, np.ndarray]:
    """MONAI's HD95, ASSD and NSD of `[*spatial, C]` masks (one volume), every class kept."""
    yt = torch.as_tensor(np.moveaxis(t, -1, 0)[None].astype(np.float32))
    yp = torch.as_tensor(np.moveaxis(p, -1, 0)[None].astype(np.float32))
    c = t.shape[-1]
    return {
        "hd95": compute_hausdorff_distance(
            yp, yt, percentile=95, spacing=list(spacing), include_background=True
        ),
        "assd": compute_average_surface_distance(
            yp, yt, symmetric=True, spacing=list(spacing), include_background=True
        ),
        "nsd": compute_surface_dice(
            yp, yt, [1.5] * c, spacing=list(spacing), include_background=True
        ),
    }


@pytest.fixture(scope="module")
def case():
    rng = np.random.default_rng(5)
    grid = np.stack(np.meshgrid(*[np.arange(n) for n in (14, 12, 9)], indexing="ij"), -1)
    truth = np.stack(
        [
            np.linalg.norm(grid - centre, axis=-1) < r
            for centre, r in (((6, 6, 4), 4), ((9, 4, 5), 3))
        ],
        -1,
    )
    truth[..., 1] |= rng.random(truth.shape[:-1]) < 0.02  # scattered voxels: many boundaries
    scores = np.clip(truth * 0.6 + rng.random(truth.shape) * 0.5, 0, 1).astype(np.float32)
    return truth, scores


def _check(measured: dict, expected: dict):
    assert list(measured) == ["hd95", "assd", "nsd", MISSED]
    for name, values in expected.items():
        np.testing.assert_allclose(measured[name], np.asarray(values).reshape(-1), rtol=2e-6)


def test_scores_thresholded_channels_last_match_monai(case):
    truth, scores = case
    measured = case_measures(
        truth,
        scores,
        REQUEST,
        spacing=SPACING,
        threshold=0.5,
        axis=-1,
        num_classes=2,
        true_labels=False,
        pred_labels=False,
    )
    _check(measured, monai_measures(truth, scores >= 0.5, SPACING))


def test_channels_first_with_a_leading_singleton_axis(case):
    truth, scores = case
    first = np.moveaxis(scores, -1, 0)[None]  # (1, C, D, H, W)
    truth_first = np.moveaxis(truth, -1, 0)[None]
    measured = case_measures(
        truth_first,
        first,
        REQUEST,
        spacing=SPACING,
        threshold=0.5,
        axis=1,
        num_classes=2,
        true_labels=False,
        pred_labels=False,
    )
    _check(measured, monai_measures(truth, scores >= 0.5, SPACING))


def test_label_maps(case):
    truth, scores = case
    labels_true = np.where(truth[..., 1], 2, np.where(truth[..., 0], 1, 0)).astype(np.uint8)
    labels_pred = np.argmax(np.concatenate([np.full((*scores.shape[:-1], 1), 0.5), scores], -1), -1)
    measured = case_measures(
        labels_true,
        labels_pred.astype(np.uint8),
        REQUEST,
        spacing=SPACING,
        threshold=0.5,
        axis=-1,
        num_classes=3,
        true_labels=True,
        pred_labels=True,
    )
    one_hot = np.eye(3, dtype=bool)
    _check(measured, monai_measures(one_hot[labels_true], one_hot[labels_pred], SPACING))


def test_a_file_with_several_volumes_is_refused(case):
    truth, scores = case
    with pytest.raises(InputError, match="one volume of 3 spatial axes per case"):
        case_measures(
            np.stack([truth] * 2),
            np.stack([scores] * 2),
            REQUEST,
            spacing=SPACING,
            threshold=0.5,
            axis=-1,
            num_classes=2,
            true_labels=False,
            pred_labels=False,
            path="two.npy",
        )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("hd95", SurfaceRequest(("hd95",))),
        ("nsd:2,hd", SurfaceRequest(("nsd", "hd"), 2.0)),
        (" assd , hd95 ", SurfaceRequest(("assd", "hd95"))),
    ],
)
def test_parse_surface(text, expected):
    assert parse_surface(text) == expected
    assert expected.percentile == (None if "hd" in expected.measures else 95.0)


@pytest.mark.parametrize(
    "text", ["", "hd99", "nsd", "nsd:-1", "nsd:nan", "hd95,hd95", "hd,hd95", "assd:2"]
)
def test_parse_surface_refuses(text):
    with pytest.raises(ValueError, match="--surface"):
        parse_surface(text)


def test_nsd_tolerance_zero_is_accepted_as_by_the_library(case):
    """`--surface nsd:0` was refused (a local `> 0` parse) while `tolerance=0` works in the
    library: the CLI now parses by `check_tolerance` (>= 0), and NSD at 0 counts the boundary
    voxels that lie on the other boundary (distance exactly 0)."""
    truth, scores = case
    scores = np.roll(scores, 1, axis=0)  # some boundary voxels on the truth's, some off
    request = parse_surface("hd95,nsd:0")
    assert request.tolerance == 0.0
    measured = case_measures(
        truth,
        scores,
        request,
        spacing=SPACING,
        threshold=0.5,
        axis=-1,
        num_classes=2,
        true_labels=False,
        pred_labels=False,
    )
    library = normalized_surface_dice(
        truth[None], scores[None], 0, spacing=SPACING, threshold=0.5, spatial_dims=3
    )
    np.testing.assert_allclose(measured["nsd"], np.asarray(library)[0], rtol=1e-6)
    pred = scores >= 0.5
    for c in range(2):
        edges = [
            m & ~ndimage.binary_erosion(m, border_value=0) for m in (truth[..., c], pred[..., c])
        ]
        both = np.sum(edges[0] & edges[1])
        assert measured["nsd"][c] == pytest.approx(2 * both / (edges[0].sum() + edges[1].sum()))
        assert 0 < measured["nsd"][c] < 1


def test_negative_nsd_tolerance_is_refused_in_the_library_words():
    with pytest.raises(ValueError) as library:
        check_tolerance(-1.0)
    with pytest.raises(ValueError, match="--surface") as parsed:
        parse_surface("hd95,nsd:-1")
    assert str(library.value) in str(parsed.value)


def test_parse_spacing():
    assert parse_spacing("1,1,2.5") == (1.0, 1.0, 2.5)
    for bad in ("1,0,2", "1,x,2", "1,inf"):
        with pytest.raises(ValueError, match="--spacing"):
            parse_spacing(bad)


def _nifti(path, array, zooms):
    image = nibabel.Nifti1Image(array, np.eye(4))
    image.header.set_zooms(zooms)
    nibabel.save(image, str(path))
    return open_volume(path)


def test_spacing_comes_from_the_headers_and_must_agree(tmp_path):
    labels = np.zeros((6, 5, 4), np.uint8)
    scores = np.zeros((6, 5, 4, 2), np.float32)
    true = _nifti(tmp_path / "t.nii.gz", labels, (0.8, 1.0, 2.5))
    pred = _nifti(tmp_path / "p.nii.gz", scores, (0.8, 1.0, 2.5, 1.0))
    assert case_spacing(pred, true, None, 3) == pytest.approx(SPACING)
    assert case_spacing(pred, true, (0.8, 1.0, 2.5), 3) == pytest.approx(SPACING)
    np.testing.assert_array_equal(read_whole(pred), scores)
    with pytest.raises(InputError, match="--spacing says"):
        case_spacing(pred, true, (1.0, 1.0, 1.0), 3)
    other = _nifti(tmp_path / "o.nii.gz", scores, (1.0, 1.0, 2.5, 1.0))
    with pytest.raises(InputError, match="voxel size"):
        case_spacing(other, true, None, 3)
    np.save(tmp_path / "p.npy", scores)
    np.save(tmp_path / "t.npy", labels)
    plain = open_volume(tmp_path / "p.npy"), open_volume(tmp_path / "t.npy")
    assert case_spacing(*plain, None, 3) == (1.0, 1.0, 1.0)
    assert case_spacing(*plain, (1, 1, 2), 3) == (1.0, 1.0, 2.0)
    with pytest.raises(InputError, match="--spacing gives 2"):
        case_spacing(*plain, (1, 2), 3)
