"""Files committed all or nothing: every output is written into a staging directory beside
its target first, and only then moved into place (`write_atomically`); one file through a
hidden temporary (`write_file_atomically`, shards' partials).
"""

import contextlib
import errno
import io
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

STAGING_PREFIX = ".voxelmetrics-staging-"


def check_writable(out_dir) -> Path:
    """Raise OSError unless `out_dir` is, or can be created as, a writable directory.

    Creates nothing: a run that fails on its inputs leaves no directory behind.
    """
    out = Path(out_dir)
    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", str(existing))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "permission denied", str(existing))
    return out


def _default_file_mode() -> int:
    """0o666 less the umask: what `open(path, "w")` would have given (mkstemp gives 0o600)."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def remove_stale_staging(out: Path) -> None:
    """Remove staging directories left in `out` by runs that were killed (their process is
    gone); those of live runs (concurrent ones into the same `out`) are left alone."""
    for staging in out.glob(STAGING_PREFIX + "*"):
        pid = staging.name[len(STAGING_PREFIX) :].split("-")[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _check_targets(out: Path, names) -> None:
    for name in names:
        target = out / name
        if target.is_symlink() or (target.exists() and not target.is_file()):
            raise IsADirectoryError(
                errno.EISDIR, "exists and is not a regular file; move it away", str(target)
            )


def _move_into_place(staging: Path, out: Path, names) -> None:
    """Swap every staged file into `out`, the previous ones set aside in `staging/.previous`.

    On success the previous files are deleted; on any failure they are put back (a file
    that cannot be put back stays in `.previous`, named in the error).
    """
    backups = staging / ".previous"
    backups.mkdir()
    done: list[str] = []
    try:
        for name in names:
            if (out / name).exists():
                os.replace(out / name, backups / name)
            done.append(name)
            os.replace(staging / name, out / name)
    except BaseException:
        for name in reversed(done):
            if (backups / name).exists():
                try:
                    os.replace(backups / name, out / name)
                except OSError as e:
                    raise OSError(f"{name} could not be put back; it is in {backups}") from e
            else:
                with contextlib.suppress(OSError):
                    (out / name).unlink()
        raise
    for name in done:
        with contextlib.suppress(OSError):
            (backups / name).unlink()


def _remove_staging(staging: Path) -> None:
    """Remove the staging directory, unless it keeps a previous file that was not restored."""
    previous = staging / ".previous"
    if previous.is_dir() and any(previous.iterdir()):
        for path in staging.iterdir():
            if path != previous:
                path.unlink()
        return
    shutil.rmtree(staging, ignore_errors=True)


def write_atomically(
    out_dir, writers: dict[str, Callable[[io.BufferedWriter], None]]
) -> list[Path]:
    """Write every `{file name: writer(binary file)}` into `out_dir`, all or nothing.

    `out_dir` is created if needed. Each writer fills a file in a staging directory inside
    `out_dir` (the same filesystem); only when all succeeded are they moved into place
    (`os.replace`, the previous files kept aside until every move succeeded). On any error,
    including a signal turned into an exception, the targets keep their previous content
    (or stay absent) and the staging directory is removed. Staging directories of killed
    earlier runs are removed first.

    Raises:
        OSError: a file could not be written or moved, or a target is a directory.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    _check_targets(out, writers)
    staging = Path(tempfile.mkdtemp(dir=out, prefix=f"{STAGING_PREFIX}{os.getpid()}-"))
    try:
        mode = _default_file_mode()
        for name, write in writers.items():
            with open(staging / name, "wb") as f:
                write(f)
            os.chmod(staging / name, mode)
        _move_into_place(staging, out, writers)
    finally:
        _remove_staging(staging)
    return [out / name for name in writers]


def write_file_atomically(
    path, write: Callable[[io.BufferedWriter], None], before_replacing=None
) -> Path:
    """Write one file through a hidden temporary beside it, renamed into place once
    `write(file)` succeeded: the target is complete or untouched, and on any error (a
    signal turned into an exception included) the temporary is removed. Unlike
    `write_atomically` it never touches other runs' temporaries, so processes on several
    machines may write into one shared directory at once (shards' partials).

    With `before_replacing(path)` (raises to keep an existing target), a new target is
    created exclusively (a hard link: a second process creating it meanwhile finds it
    there) and an existing one is replaced only once `before_replacing` returned.

    Raises:
        OSError: the file could not be written or renamed, or the target is a directory.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _check_targets(path.parent, [path.name])
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as f:
            write(f)
        os.chmod(temporary, _default_file_mode())
        if before_replacing is None or not _created_exclusively(temporary, path):
            if before_replacing is not None:
                before_replacing(path)
            os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return path


def _created_exclusively(temporary, path: Path) -> bool:
    """Link `temporary` as `path` if no `path` exists (then remove `temporary`); False if
    one does, or the filesystem has no hard links (then the caller checks and replaces)."""
    try:
        os.link(temporary, path)
    except OSError:  # FileExistsError, or no hard links here
        return False
    os.unlink(temporary)
    return True
