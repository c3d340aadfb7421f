"""Verified downloads: try each mirror in turn, check the digests, write atomically.

Only the standard library's ``urllib`` is used. A file reaches its final name only after
the whole body arrived (byte count equal to ``Content-Length`` when the server sent one)
and every expected digest matched; anything else leaves no file behind.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, Any

from flowgrad._atomic import atomic_write

DEFAULT_TIMEOUT = 60.0
_CHUNK = 1 << 16


class DownloadError(OSError):
    """No mirror delivered a complete, verified copy of a file."""


class ChecksumError(DownloadError, ValueError):
    """Every mirror that answered delivered bytes whose digest did not match."""


class _TransferError(Exception):
    """One mirror failed (HTTP error, refused connection, cut-off body)."""


def cache_dir() -> Path:
    """Where downloads go by default.

    ``$FLOWGRAD_CACHE`` if set, else ``$XDG_CACHE_HOME/flowgrad``, else
    ``~/.cache/flowgrad``.
    """
    explicit = os.environ.get("FLOWGRAD_CACHE")
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "flowgrad"


def _progress_bar(enabled: bool | None, total: int | None, desc: str) -> Any:
    if enabled is None:
        enabled = hasattr(sys.stderr, "isatty") and sys.stderr.isatty()
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:  # progress bars are optional
        return None
    return tqdm(total=total, desc=desc, unit="B", unit_scale=True, unit_divisor=1024,
                leave=False, file=sys.stderr)


def _transfer(url: str, out: IO[bytes], algorithms: Iterable[str], timeout: float,
              progress: bool | None, desc: str) -> dict[str, str]:
    """Stream ``url`` into ``out``; return the hex digests of what arrived."""
    request = urllib.request.Request(url, headers={"User-Agent": "flowgrad"})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise _TransferError(f"HTTP {exc.code} {exc.reason}") from exc
    except urllib.error.URLError as exc:
        raise _TransferError(f"cannot connect ({exc.reason})") from exc
    except (OSError, http.client.HTTPException, ValueError) as exc:
        raise _TransferError(f"{type(exc).__name__}: {exc}") from exc
    hashers = {alg: hashlib.new(alg, usedforsecurity=False) for alg in algorithms}
    received = 0
    with response:
        length = response.headers.get("Content-Length")
        total = int(length) if length and length.strip().isdigit() else None
        bar = _progress_bar(progress, total, desc)
        try:
            while True:
                try:
                    chunk = response.read(_CHUNK)
                except (OSError, http.client.HTTPException) as exc:
                    raise _TransferError(f"connection broken after {received} bytes "
                                         f"({type(exc).__name__}: {exc})") from exc
                if not chunk:
                    break
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(len(chunk))
        finally:
            if bar is not None:
                bar.close()
    # http.client returns a short body without complaint when the peer closes early, so
    # compare against the announced length ourselves.
    if total is not None and received != total:
        raise _TransferError(f"transfer interrupted: received {received} of {total} bytes")
    return {alg: h.hexdigest() for alg, h in hashers.items()}


def download_file(filename: str, folder: str | os.PathLike, mirrors: Iterable[str],
                  digests: Mapping[str, str], *, timeout: float = DEFAULT_TIMEOUT,
                  progress: bool | None = None) -> Path:
    """Fetch ``filename`` from the first mirror that serves it intact, into ``folder``.

    The URL is ``mirror + "/" + filename``. The body streams into a temporary file in
    ``folder`` while it is hashed; only when it is complete and every digest in ``digests``
    matches is it fsynced and renamed to ``folder/filename``. A mirror that fails (HTTP
    error, no connection, body cut short, digest mismatch) is skipped for the next one.

    Args:
        filename: the file's name on the mirrors and on disk.
        folder: where to put it (created if needed; the folders made are removed again
            when no mirror delivers the file).
        mirrors: base URLs, tried in order (``http``, ``https`` or ``file``).
        digests: expected hex digests by ``hashlib`` algorithm name, e.g.
            ``{"sha256": "...", "md5": "..."}``; all are checked, at least one is required.
        timeout: seconds to wait on a silent connection.
        progress: show a tqdm progress bar; ``None`` shows one when tqdm is installed and
            stderr is a terminal.

    Returns:
        The path of the verified file.

    Raises:
        ValueError: no digest given (an unverified file is never written), or no mirror.
        ChecksumError: every mirror that answered served bytes with the wrong digest.
        DownloadError: no mirror delivered the file; the message lists each mirror's
            failure.
    """
    expected = {alg.lower(): hexdigest.lower() for alg, hexdigest in digests.items()}
    if not expected:
        raise ValueError(f"refusing to download {filename} without a digest to verify it")
    mirrors = [m for m in mirrors if m]
    if not mirrors:
        raise ValueError(f"no mirror given to download {filename} from")
    folder = Path(folder)
    # The folders made here go again if no file arrives (innermost first, each if empty).
    made = [p for p in (folder, *folder.parents) if not p.exists()]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DownloadError(f"cannot download {filename}: cannot create the folder {folder} "
                            f"({exc.strerror or exc})") from None
    try:
        return _fetch(filename, folder, mirrors, expected, timeout, progress)
    except BaseException:
        for p in made:
            try:
                p.rmdir()
            except OSError:
                break
        raise


def _fetch(filename: str, folder: Path, mirrors: list[str], expected: dict[str, str],
           timeout: float, progress: bool | None) -> Path:
    destination = folder / filename
    failures: list[str] = []
    all_checksum = True
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            with atomic_write(destination) as fh:
                got = _transfer(url, fh, expected, timeout, progress, filename)
                wrong = [f"{alg.upper()} {got[alg]}, expected {want}"
                         for alg, want in expected.items() if got[alg] != want]
                if wrong:
                    raise ChecksumError("checksum mismatch: got " + "; ".join(wrong))
        except ChecksumError as exc:
            failures.append(f"{url}: {exc}")
        except _TransferError as exc:
            all_checksum = False
            failures.append(f"{url}: {exc}")
        else:
            return destination
    kind = ChecksumError if all_checksum else DownloadError
    raise kind(f"could not download a verified {filename}; no file was written. Tried: "
               + " | ".join(failures))
