"""Atomic file writes: the one helper every writer in flowgrad uses.

A write goes to a temporary file in the destination's own folder (so the final
``os.replace`` is a rename within one filesystem), is fsynced, takes the permission bits of
the file it replaces, and is renamed over the destination; the folder is then fsynced so
the rename itself is durable. A crash or an error mid-write therefore leaves either the old
file or the complete new one, never a partial file, and never a temporary file behind.

Like ``torch.save`` (which opens the path for writing), a destination that is a symlink is
written through: its target gets the new content and the link stays. A destination that is
not a regular file (a folder, a FIFO, a device) is refused before anything is written.
Every error names the path the caller gave, never the temporary file.

* :func:`atomic_write` yields an open file (binary, or UTF-8 text);
* :func:`atomic_path` yields a temporary *path* for writers that want a file name
  (matplotlib's ``savefig``, an animation writer); it keeps the destination's suffix so
  such writers still pick the format from it;
* :func:`write_bytes` and :func:`write_text` write a whole payload at once.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

__all__ = ["atomic_path", "atomic_write", "check_writable", "write_bytes", "write_text"]

_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _error(kind: type[OSError], code: int, message: str) -> OSError:
    # The text is exactly `message` (no "[Errno n]" prefix), while errno stays set for
    # callers that test it.
    exc = kind(message)
    exc.errno = code
    return exc


def _target(path: str | os.PathLike) -> tuple[Path, int | None]:
    """The file to replace (a symlink's target) and its permission bits (None: new file).

    Raises:
        IsADirectoryError: the destination is a folder.
        OSError: the destination is another non-regular file (FIFO, device, socket).
        FileNotFoundError: the destination's folder does not exist.
    """
    shown = Path(path)
    target = Path(os.path.realpath(shown)) if os.path.islink(shown) else shown
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        what = next((name for test, name in _KINDS if test(st.st_mode)), "not a regular file")
        kind = IsADirectoryError if stat.S_ISDIR(st.st_mode) else OSError
        code = errno.EISDIR if stat.S_ISDIR(st.st_mode) else errno.EINVAL
        raise _error(kind, code, f"cannot write {shown}: it is {what}, not a regular file")
    folder = target.parent
    if not folder.is_dir():
        raise _error(FileNotFoundError, errno.ENOENT,
                     f"cannot write {shown}: folder {folder} does not exist")
    return target, None if st is None else stat.S_IMODE(st.st_mode)


def check_writable(path: str | os.PathLike) -> Path:
    """Check, before long work, that a file could be written at ``path`` (nothing is
    created); returns the file that would be replaced (a symlink's target) or created.

    Raises:
        IsADirectoryError, OSError: ``path`` is a folder or another non-regular file.
        FileNotFoundError: ``path``'s folder does not exist.
        PermissionError: the folder (or the existing file) cannot be written.
    """
    if not os.fspath(path):
        raise _error(FileNotFoundError, errno.ENOENT, "cannot write to an empty path")
    target, mode = _target(path)
    folder = target.parent
    if not os.access(folder, os.W_OK | os.X_OK):
        raise _error(PermissionError, errno.EACCES,
                     f"cannot write {path}: folder {folder} is not writable")
    return target


def _fsync_path(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    # Makes the rename itself durable; not possible on every platform, hence best effort.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, _synced: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it over ``path`` atomically.

    The body writes the whole file at the yielded path (which ends in ``path``'s suffix).
    If the body raises, the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the destination file.

    Yields:
        The temporary path to write.

    Raises:
        IsADirectoryError, OSError: ``path`` is a folder or another non-regular file.
        FileNotFoundError: ``path``'s folder does not exist.
        OSError: any failure while writing or renaming; a message that would name the
            temporary file names ``path`` instead.

    Example:
        >>> with atomic_path("curves.png") as tmp:  # doctest: +SKIP
        ...     figure.savefig(tmp)
    """
    target, mode = _target(path)
    tmp = target.parent / f".{target.name}.{secrets.token_hex(6)}.tmp{target.suffix}"
    try:
        yield tmp
        if not _synced:
            _fsync_path(tmp)
        if mode is not None:
            os.chmod(tmp, mode)  # the file it replaces keeps its permissions
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename is not None and \
                os.fspath(exc.filename) == os.fspath(tmp):
            raise type(exc)(exc.errno, exc.strerror, os.fspath(path)) from None
        raise
    _fsync_dir(target.parent)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, binary: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success move it over ``path`` atomically.

    The file is flushed and fsynced before the rename; if the ``with`` body raises, it is
    removed, so ``path`` holds either its old content or the complete new content.

    Args:
        path: the destination file.
        binary: open in binary mode (default), else text mode with UTF-8.

    Yields:
        The open temporary file.

    Raises:
        The same as :func:`atomic_path`.

    Example:
        >>> with atomic_write("config.json", binary=False) as fh:  # doctest: +SKIP
        ...     fh.write("{}")
    """
    with atomic_path(path, _synced=True) as tmp:
        # "x": never clobber; the mode bits follow the umask like any newly created file.
        with open(tmp, "xb") if binary else open(tmp, "x", encoding="utf-8") as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())


def write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically; returns ``path`` as a ``Path``."""
    with atomic_write(path) as fh:
        fh.write(payload)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically; returns ``path`` as a ``Path``."""
    with atomic_write(path, binary=False) as fh:
        fh.write(text)
    return Path(path)
