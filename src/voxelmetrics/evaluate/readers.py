"""Volume readers that copy one slab along any axis into a reused buffer.

Nothing here maps or loads a whole file: memory stays bounded by the slab, not the volume.
Formats: `.npy` (file offsets), `.npz` (a named member), NIfTI (`.nii`, `.nii.gz`, through
nibabel's array proxy), and in-memory numpy arrays. A compressed input (`.npz` member,
`.nii.gz`) is decompressed once, front to back, into an anonymous temporary file (removed
by the system even if the process is killed) on its first read: total time stays linear
in the file size, and the stream's CRC and length are verified on the way.
"""

import contextlib
import dataclasses
import errno
import gzip
import logging
import os
import shutil
import tempfile
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np

SUFFIXES = (".npy", ".npz", ".nii", ".nii.gz")
# Deflate emits at least one bit per 258 bytes of a run: no stream inflates by more than this.
MAX_DEFLATE_RATIO = 1032
COPY_BYTES = 2**20
# A voxel size from pixdim and one from the affine's columns agree within this relative
# tolerance (headers store float32).
VOXEL_SIZE_RTOL = 1e-4
# Where a 0/1 mask read from a file is a class mask (`value >= MASK_CUT`): masks hold only
# 0 and 1 (`value_checks.check_labels`), so any cut in (0, 1] gives the same; one, named.
MASK_CUT = 0.5


class InputError(ValueError):
    """A file (or a pair of files) cannot be evaluated; the message names it and says why."""

    def __init__(self, path, problem: str):
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}")

    def __reduce__(self):
        """Pickle as `(path, problem)`, so that a worker process's error arrives whole."""
        return type(self), (self.path, self.problem)


class InputWarning(UserWarning):
    """Something in the inputs was skipped or looks wrong, but the run can go on."""


@dataclasses.dataclass
class Volume:
    """A readable array: its shape, its buffer dtype, and a slab reader.

    Attributes:
        path: file path (or "<array>") used in messages.
        shape: the array's shape.
        dtype: native-order dtype of the values `read_into` writes.
        read_into: `read_into(start, count, out, axis)` copies the slab
            `start:start + count` along `axis` into the first `count` entries of `out`
            along `axis`; `out` is C-contiguous, of `shape` except on `axis`.
        close: releases what the reads hold (a decompressed temporary); reading again
            after it starts over.
        fortran: the values are stored in Fortran order (NIfTI, Fortran `.npy`): a slab
            along the last axes is contiguous there, along the first ones scattered.
    """

    path: str
    shape: tuple[int, ...]
    dtype: np.dtype
    read_into: Callable[[int, int, np.ndarray, int], None]
    close: Callable[[], None] = lambda: None
    fortran: bool = False


def _slab(axis: int, start: int, stop: int) -> tuple:
    return (slice(None),) * axis + (slice(start, stop),)


def case_name(path: Path) -> str:
    """The file name without its volume suffix: pairs `pred/a.npy` with `true/a.nii.gz`."""
    name = path.name
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _suffix(path: Path) -> str:
    for suffix in sorted(SUFFIXES, key=len, reverse=True):
        if path.name.endswith(suffix):
            return suffix
    raise InputError(
        path, f"unknown extension; expected one of {', '.join(SUFFIXES)} (or a directory)."
    )


def open_volume(source, *, key: str | None = None) -> Volume:
    """Open a volume for slab reads without reading its values.

    Args:
        source: a path (`.npy`, `.npz`, `.nii`, `.nii.gz`) or a numpy array.
        key: the `.npz` member to read; optional when the archive holds one array.

    Returns:
        A `Volume`. Header problems (unknown extension, unreadable, truncated or corrupt
        file, a shape the file cannot hold, an empty shape, object dtype, missing key)
        raise `InputError` naming the file.

    Example:
        >>> import numpy as np
        >>> v = open_volume(np.arange(6.0).reshape(3, 2))
        >>> out = np.empty((2, 2), v.dtype)
        >>> v.read_into(1, 2, out, 0)
        >>> out.tolist()
        [[2.0, 3.0], [4.0, 5.0]]
    """
    if isinstance(source, np.ndarray):
        return _check_not_empty(_array_volume(source, "<array>"))
    path = Path(source)
    if path.is_dir():
        raise InputError(path, "is a directory; expected a volume file.")
    suffix = _suffix(path)
    if not path.is_file():
        raise InputError(path, "no such file.")
    opener = {".npy": _npy_volume, ".npz": lambda p: _npz_volume(p, key)}.get(suffix, _nifti)
    try:
        volume = opener(path)
    except OSError as e:
        raise InputError(path, f"cannot be read ({e.strerror or e}).") from None
    return _check_not_empty(volume)


def _check_not_empty(volume: Volume) -> Volume:
    if 0 in volume.shape or not volume.shape:
        raise InputError(
            volume.path, f"has shape {volume.shape}: no voxels (or no classes) to evaluate."
        )
    return volume


def _check_inflatable(path, claimed: int, compressed: int) -> None:
    """A compressed stream cannot hold more than `MAX_DEFLATE_RATIO` times its size."""
    if claimed > MAX_DEFLATE_RATIO * compressed + 2**16:
        raise InputError(
            path,
            f"is corrupt: its header claims {claimed:,} bytes of data, more than "
            f"{compressed:,} compressed bytes can hold.",
        )


def _spill_problem(error: Exception) -> str:
    """What went wrong while decompressing: no room for the temporary, a read error, or
    (anything without an errno: a CRC, length or stream error) a corrupt file."""
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
        return (
            f"cannot be decompressed into a temporary file ({error.strerror}); point TMPDIR "
            f"to a disk with room for the uncompressed volume."
        )
    if isinstance(error, OSError) and error.errno is not None:
        return f"cannot be read ({error.strerror})."
    return f"is corrupt or truncated ({error})."


def _spilled(path, open_stream: Callable, read_file: Callable) -> tuple[Callable, Callable]:
    """`(read_into, close)` of a compressed volume, decompressed once on its first read.

    `open_stream()` opens the decompressing stream (which verifies its CRC and length
    at its end); `read_file(file, start, count, out, axis)` reads a slab from the
    decompressed copy, an anonymous temporary file.
    """
    spill: list = []

    def read_into(start: int, count: int, out: np.ndarray, axis: int) -> None:
        if not spill:
            tmp = tempfile.TemporaryFile()  # noqa: SIM115 (kept open across reads until close)
            try:
                with open_stream() as stream:
                    shutil.copyfileobj(stream, tmp, COPY_BYTES)
            except (EOFError, OSError, ValueError, zipfile.BadZipFile, zlib.error) as e:
                tmp.close()
                raise InputError(path, _spill_problem(e)) from None
            spill.append(tmp)
        read_file(spill[0], start, count, out, axis)

    def close() -> None:
        while spill:
            spill.pop().close()

    return read_into, close


def _check_dtype(path, dtype: np.dtype) -> np.dtype:
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in "biuf":
        raise InputError(
            path, f"holds dtype {dtype}; expected a numeric array (bool, int, uint or float)."
        )
    return dtype.newbyteorder("=")


def _array_volume(array: np.ndarray, path: str) -> Volume:
    dtype = _check_dtype(path, array.dtype)

    def read_into(start: int, count: int, out: np.ndarray, axis: int) -> None:
        out[_slab(axis, 0, count)] = array[_slab(axis, start, start + count)]

    fortran = array.flags.f_contiguous and not array.flags.c_contiguous
    return Volume(path, tuple(array.shape), dtype, read_into, fortran=fortran)


def _npy_header(path, stream) -> tuple[tuple[int, ...], bool, np.dtype]:
    try:
        version = np.lib.format.read_magic(stream)
        read_header = (
            np.lib.format.read_array_header_1_0
            if version == (1, 0)
            else np.lib.format.read_array_header_2_0
        )
        shape, fortran, dtype = read_header(stream)
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise InputError(path, f"is not a valid .npy file (corrupt header: {e}).") from None
    return tuple(shape), fortran, dtype


def _runs(shape: tuple[int, ...], itemsize: int, start: int, count: int, axis: int):
    """Byte ranges of a C-order slab: `(file offset, bytes)` per leading index, in order."""
    inner = int(np.prod(shape[axis + 1 :], dtype=np.int64)) * itemsize
    outer = int(np.prod(shape[:axis], dtype=np.int64))
    return [(i * shape[axis] * inner + start * inner, count * inner) for i in range(outer)]


def _copy_runs(path, read, shape, dtype, start, count, out, axis) -> None:
    """Fill `out`'s first `count` entries on `axis` from `read(offset, view) -> bytes read`."""
    rows = out.view(np.uint8).reshape(int(np.prod(out.shape[:axis], dtype=np.int64)), -1)
    runs = _runs(shape, dtype.itemsize, start, count, axis)
    for row, (offset, size) in zip(rows, runs, strict=True):
        if read(offset, row[:size]) != size:
            raise InputError(path, f"is truncated: the data ends before index {start + count}.")
    if not dtype.isnative:
        out[_slab(axis, 0, count)].byteswap(inplace=True)


def _npy_volume(path: Path) -> Volume:
    with open(path, "rb") as f:
        shape, fortran, dtype = _npy_header(path, f)
        offset = f.tell()
    _check_dtype(path, dtype)
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    size = os.path.getsize(path)
    if size < expected:
        raise InputError(
            path, f"is truncated: {size} bytes, but its header promises {expected} bytes."
        )
    if fortran and len(shape) > 1:
        return _fortran_npy_volume(path, shape, dtype, offset)
    read_file = _file_reader(path, shape, dtype, offset)

    def read_into(start: int, count: int, out: np.ndarray, axis: int) -> None:
        with open(path, "rb") as f:
            read_file(f, start, count, out, axis)

    return Volume(str(path), shape, _check_dtype(path, dtype), read_into)


def _file_reader(path, shape, dtype: np.dtype, offset: int) -> Callable:
    """`read_file(file, start, count, out, axis)` for a C-order array at `offset` of a file."""

    def read_file(f, start: int, count: int, out: np.ndarray, axis: int) -> None:
        def read(at: int, view: np.ndarray) -> int:
            f.seek(offset + at)
            return f.readinto(view)

        _copy_runs(path, read, shape, dtype, start, count, out, axis)

    return read_file


def _fortran_npy_volume(path: Path, shape, dtype: np.dtype, offset: int) -> Volume:
    """Fortran-ordered `.npy`: a slab is strided, so map the file and unmap it per read."""

    def read_into(start: int, count: int, out: np.ndarray, axis: int) -> None:
        mapped = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=shape, order="F")
        out[_slab(axis, 0, count)] = mapped[_slab(axis, start, start + count)]
        del mapped

    return Volume(str(path), shape, _check_dtype(path, dtype), read_into, fortran=True)


def _npz_volume(path: Path, key: str | None) -> Volume:
    try:
        archive = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as e:
        raise InputError(path, f"is not a valid .npz archive ({e}).") from None
    with archive:
        names = [n[: -len(".npy")] for n in archive.namelist() if n.endswith(".npy")]
        if key is None and len(names) == 1:
            key = names[0]
        if key not in names:
            wanted = f"has no array {key!r}" if key else "holds several arrays; name one with a key"
            raise InputError(path, f"{wanted}; its arrays are {names}.")
        member = key + ".npy"
        info = archive.getinfo(member)
        try:
            with archive.open(member) as stream:
                shape, fortran, dtype = _npy_header(path, stream)
                offset = stream.tell()
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error) as e:
            raise InputError(path, f"is corrupt: reading {key!r} failed ({e}).") from None
    _check_dtype(path, dtype)
    if fortran and len(shape) > 1:
        raise InputError(path, f"array {key!r} is Fortran-ordered; save it in C order.")
    claimed = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    _check_inflatable(path, claimed, info.compress_size)
    if claimed != info.file_size:
        raise InputError(
            path,
            f"is corrupt: array {key!r} claims {claimed:,} bytes, its archive entry holds "
            f"{info.file_size:,}.",
        )

    @contextlib.contextmanager
    def open_stream():
        with zipfile.ZipFile(path) as zf, zf.open(member) as stream:
            yield stream

    read_into, close = _spilled(path, open_stream, _file_reader(path, shape, dtype, offset))
    return Volume(str(path), shape, _check_dtype(path, dtype), read_into, close)


def _nifti(path: Path) -> Volume:
    """A NIfTI image; `.nii.gz` is decompressed once into a temporary (see `_spilled`)."""
    try:
        image = _load_nifti(path)
        shape = tuple(int(s) for s in image.shape)
        disk_dtype = np.dtype(image.get_data_dtype())
        data_offset = int(image.header.get_data_offset())
    except OSError:
        raise  # unreadable (permissions): open_volume says so
    except Exception as e:  # nibabel raises many exception types for a bad header
        problem = f"is not a readable NIfTI image: truncated or corrupt ({type(e).__name__}: {e})."
        raise InputError(path, problem) from None
    _check_dtype(path, disk_dtype)
    claimed = data_offset + int(np.prod(shape, dtype=np.int64)) * disk_dtype.itemsize
    size = os.path.getsize(path)
    if path.name.endswith(".gz"):
        _check_inflatable(path, claimed, size)
        kind = type(image)
        read_into, close = _spilled(
            path,
            lambda: gzip.open(path, "rb"),  # noqa: SIM115 (a stream factory for _spilled)
            lambda f, *slab: _read_proxy(path, kind, f, *slab),
        )
    else:
        if size < claimed:
            raise InputError(path, f"is truncated: {size} bytes, its header promises {claimed}.")
        read_into, close = _proxy_reader(path, image.dataobj), lambda: None
    scaled = not (image.dataobj.slope == 1 and image.dataobj.inter == 0)
    dtype = np.dtype(np.float32) if scaled else disk_dtype
    return Volume(str(path), shape, _check_dtype(path, dtype), read_into, close, fortran=True)


class _NoPixdimFixes(logging.Filter):
    """Drops nibabel's "pixdim[1,2,3] should be ..." lines: `voxel_size` reads the raw
    pixdim and says itself what it does about a bad one (nibabel would say it used 1.0)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("pixdim[")


_NO_PIXDIM_FIXES = _NoPixdimFixes()


def _load_nifti(path):
    """`nibabel.load(path)` without nibabel's log lines about pixdim (see `voxel_size`)."""
    import nibabel

    logger = logging.getLogger("nibabel.global")
    if _NO_PIXDIM_FIXES not in logger.filters:
        logger.addFilter(_NO_PIXDIM_FIXES)
    return nibabel.load(path)


def _raw_nifti_header(path):
    """The NIfTI-1 or -2 header of `path` as stored: nibabel's checks off (loading fixes a
    zero pixdim to 1.0 and a negative one to its absolute value)."""
    from nibabel import Nifti1Header, Nifti2Header
    from nibabel.openers import ImageOpener

    with ImageOpener(str(path)) as f:
        size = np.frombuffer(f.read(4), np.int32)
        nifti2 = size.size == 1 and int(size[0]) in (540, int(np.int32(540).byteswap()))
        f.seek(0)
        return (Nifti2Header if nifti2 else Nifti1Header).from_fileobj(f, check=False)


def voxel_size(path) -> tuple[float, ...] | None:
    """The voxel size of a NIfTI file's spatial axes (the first `min(3, ndim)`), else None.

    pixdim when each of them is a positive number. A zero, negative or NaN one is resolved
    from the sform affine (`sform_code > 0`; the qform is built from pixdim itself): the
    norms of its 3x3 part's columns, when every norm is positive and agrees with every
    valid pixdim within `VOXEL_SIZE_RTOL`. Otherwise `InputError` naming the file.

    Example:
        >>> import nibabel, tempfile, os
        >>> image = nibabel.Nifti1Image(np.zeros((2, 2, 2), np.uint8), np.diag([2.5, 2.5, 2, 1]))
        >>> image.header["pixdim"][1:4] = 0  # a broken header; the sform still says 2.5, 2.5, 2
        >>> path = os.path.join(tempfile.mkdtemp(), "case.nii.gz")
        >>> nibabel.save(image, path)
        >>> voxel_size(path)
        (2.5, 2.5, 2.0)
    """
    if not str(path).endswith((".nii", ".nii.gz")):
        return None
    header = _raw_nifti_header(path)
    spatial = min(3, int(header["dim"][0]))
    pixdim = np.asarray(header["pixdim"][1 : 1 + spatial], np.float64)
    valid = np.isfinite(pixdim) & (pixdim > 0)
    if valid.all():
        return tuple(float(v) for v in pixdim)
    stated = f"has voxel size (pixdim) {pixdim.tolist()} in its header: not all positive numbers"
    sform_code = int(header["sform_code"])
    if sform_code <= 0:
        raise InputError(
            path,
            f"{stated}, and no sform affine to read it from (sform_code {sform_code}); fix "
            f"the header's pixdim.",
        )
    norms = np.linalg.norm(np.asarray(header.get_sform(), np.float64)[:3, :spatial], axis=0)
    consistent = np.isfinite(norms) & (norms > 0)
    consistent &= ~valid | np.isclose(norms, pixdim, rtol=VOXEL_SIZE_RTOL, atol=0)
    if not consistent.all():
        raise InputError(
            path,
            f"{stated}, and its sform affine's columns have lengths {norms.tolist()}, which "
            f"do not give it (each positive, equal to every valid pixdim); fix the header.",
        )
    return tuple(float(v) for v in norms)


def _proxy_reader(path, proxy) -> Callable:
    def read_into(start: int, count: int, out: np.ndarray, axis: int) -> None:
        try:
            out[_slab(axis, 0, count)] = proxy[_slab(axis, start, start + count)]
        except (EOFError, OSError, ValueError, zlib.error) as e:
            raise InputError(path, f"is truncated or corrupt ({type(e).__name__}: {e}).") from None

    return read_into


def _read_proxy(path, kind, file, start: int, count: int, out: np.ndarray, axis: int) -> None:
    """Read a slab of the uncompressed NIfTI image (class `kind`) held by an open `file`."""
    from nibabel.fileholders import FileHolder

    holder = FileHolder(fileobj=file)
    image = kind.from_file_map({"header": holder, "image": holder})
    _proxy_reader(path, image.dataobj)(start, count, out, axis)


def _volume_files(directory: Path) -> dict[str, Path]:
    """`{case: path}` of a directory's volume files; hidden files are skipped with a warning."""
    entries = sorted(directory.iterdir())
    hidden = [p.name for p in entries if p.name.startswith(".")]
    if hidden:
        warnings.warn(
            f"{directory}: skipped {len(hidden)} hidden file(s): {', '.join(hidden)}.",
            InputWarning,
            stacklevel=3,
        )
    files = [p for p in entries if not p.name.startswith(".")]
    if not files:
        raise InputError(directory, "is an empty directory; expected volume files.")
    by_case: dict[str, Path] = {}
    for path in files:
        _suffix(path)
        name = case_name(path)
        if name in by_case:
            other = by_case[name].name
            raise InputError(path, f"clashes with {other}: two volumes of case {name!r}.")
        by_case[name] = path
    return by_case


def _unpaired(names, limit: int = 5) -> str:
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def pair_cases(pred, true) -> list[tuple[str, Path, Path]]:
    """Pair prediction and truth files by case name (the file name without its suffix).

    Args:
        pred, true: two volume files, or two directories of volume files.

    Returns:
        `[(case, pred_path, true_path), ...]` sorted by case. Cases present on one side
        only (all listed, from both sides), an empty directory, or a file with an unknown
        extension raise `InputError`; hidden files are skipped with an `InputWarning`.
    """
    pred, true = Path(pred), Path(true)
    for path in (pred, true):
        if not path.exists():
            raise InputError(path, "no such file or directory.")
    if pred.is_dir() != true.is_dir():
        raise InputError(
            true if pred.is_dir() else pred,
            "is a file but its partner is a directory; give two files or two directories.",
        )
    if not pred.is_dir():
        _suffix(pred), _suffix(true)
        return [(case_name(pred), pred, true)]
    preds, trues = _volume_files(pred), _volume_files(true)
    only_pred = sorted(set(preds) - set(trues))
    only_true = sorted(set(trues) - set(preds))
    if only_pred or only_true:
        sides = [
            f"{len(names)} in {side} only ({_unpaired(names)})"
            for names, side in ((only_pred, pred), (only_true, true))
            if names
        ]
        raise InputError(
            preds[only_pred[0]] if only_pred else trues[only_true[0]],
            f"has no partner: cases pair by file name without suffix; unpaired: "
            f"{'; '.join(sides)}.",
        )
    return [(name, preds[name], trues[name]) for name in sorted(preds)]
