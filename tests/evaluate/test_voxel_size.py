"""Issue 21, fault 9: the voxel size of a NIfTI header whose pixdim is zero, negative or NaN.

nibabel replaces a zero pixdim with 1.0 (and logs it) on loading: a boundary distance came
out in voxels while the affine said 2.5 mm. Such a pixdim is taken from a consistent sform
affine (its columns' lengths) or refused with the file's name. Real gzip'd NIfTI files,
written by nibabel with the broken header patched in.
"""

import gzip
import json

import nibabel
import numpy as np
import pytest

from voxelmetrics.cli import main

SIZE = 2.5
SFORM = np.diag([SIZE, SIZE, SIZE, 1.0])


def _nifti(path, array, pixdim, sform=SFORM, sform_code=1, kind=nibabel.Nifti1Header):
    """Write `array` as a single-file NIfTI with `pixdim[1:4]`, the sform and its code as
    given and no qform: nibabel's header, its bytes written as they are (`nibabel.save`
    would first mend pixdim and the sform from the image's affine)."""
    header = kind()
    header.set_data_shape(array.shape)
    header.set_data_dtype(array.dtype)
    header.set_sform(sform, code=sform_code)
    header["pixdim"][1 : 1 + len(pixdim)] = pixdim
    offset = header.sizeof_hdr + 4  # the header, then 4 bytes: no extension
    header.set_data_offset(offset)
    block = header.binaryblock
    data = block + bytes(offset - len(block)) + array.tobytes(order="F")
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(data)
    return path


def _cube(offset: int) -> np.ndarray:
    """A 4^3 cube of label 1 in a 12^3 volume, moved by `offset` voxels along axis 0."""
    labels = np.zeros((12, 12, 12), np.uint8)
    labels[3 + offset : 7 + offset, 3:7, 3:7] = 1
    return labels


def _pair(tmp_path, pixdim, **header):
    for side, offset in (("pred", 2), ("true", 0)):
        (tmp_path / side).mkdir(exist_ok=True)
        _nifti(tmp_path / side / "case.nii.gz", _cube(offset), pixdim, **header)
    return str(tmp_path / "pred"), str(tmp_path / "true")


def _hausdorff(tmp_path, capfd, pixdim, **header) -> float:
    pred, true = _pair(tmp_path, pixdim, **header)
    assert main(["evaluate", pred, true, "--surface", "hd", "--json", "--quiet"]) == 0
    captured = capfd.readouterr()
    assert "pixdim" not in captured.err  # nibabel's "setting 0 dims to 1" is not printed
    report = json.loads(captured.out)
    return report["cases"][0]["classes"]["class_1"]["hd"]


@pytest.mark.parametrize("pixdim", [(0, 0, 0), (np.nan, np.nan, np.nan), (0, -SIZE, SIZE)])
def test_a_broken_pixdim_is_read_from_a_consistent_sform(tmp_path, capfd, pixdim):
    """The cube moved by 2 voxels of 2.5 mm: HD 5.0 (it was 2.0, in voxels, with exit 0)."""
    assert _hausdorff(tmp_path, capfd, pixdim) == pytest.approx(2 * SIZE)


def test_a_valid_pixdim_is_used_as_before(tmp_path, capfd):
    assert _hausdorff(tmp_path, capfd, (1.5, 1.0, 1.0)) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("pixdim", "header", "expected"),
    [
        ((0, 0, 0), {"sform_code": 0}, "no sform affine to read it from (sform_code 0)"),
        ((np.nan, SIZE, SIZE), {"sform_code": 0}, "[nan, 2.5, 2.5] in its header"),
        ((0, 2.0, SIZE), {}, "columns have lengths [2.5, 2.5, 2.5], which do not give it"),
        ((0, 0, 0), {"sform": np.diag([SIZE, 0, SIZE, 1])}, "lengths [2.5, 0.0, 2.5]"),
    ],
)
def test_a_broken_pixdim_without_a_consistent_sform_is_refused(
    tmp_path, capfd, pixdim, header, expected
):
    pred, true = _pair(tmp_path, pixdim, **header)
    assert main(["evaluate", pred, true, "--surface", "hd", "--quiet"]) == 2
    err = capfd.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"voxelmetrics: error: {tmp_path / 'true' / 'case.nii.gz'}: has voxel")
    assert expected in err and "pixdim" in err


def test_voxel_size_reads_the_raw_header(tmp_path):
    from voxelmetrics.evaluate.readers import voxel_size

    nifti2 = nibabel.Nifti2Header
    assert voxel_size(tmp_path / "a.npy") is None
    broken = _nifti(tmp_path / "a.nii.gz", np.zeros((3, 4, 5), np.float32), (0, 0, 0))
    assert voxel_size(broken) == (SIZE, SIZE, SIZE)
    rotated = np.eye(4)
    rotated[:3, :3] = [[0, -1.5, 0], [2.0, 0, 0], [0, 0, 3.0]]  # columns 2.0, 1.5, 3.0 long
    sheared = _nifti(tmp_path / "b.nii", np.zeros((3, 4, 5), np.uint8), (0, 1.5, 0), rotated)
    assert voxel_size(sheared) == (2.0, 1.5, 3.0)
    flat = np.zeros((3, 4), np.uint8)  # NIfTI-2, 2-D: two spatial axes
    two_d = _nifti(tmp_path / "c.nii.gz", flat, (0, 0.25), np.diag([0.5, 0.25, 1, 1]), 1, nifti2)
    assert voxel_size(two_d) == (0.5, 0.25)
    assert nibabel.load(two_d).shape == (3, 4)
