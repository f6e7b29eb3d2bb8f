"""Turn a path or bytes into (bytes, label), with one clear error per way a file can fail to open."""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from braintumor.io.common import MAX_FILE_BYTES
from braintumor.io.types import ScanReadError


def label_for(source: str | Path | bytes | bytearray | memoryview, name: str | None) -> str:
    """The name used in errors and in Scan.source: `name` if given, else the path, else "<bytes>"."""
    if name is not None:
        return str(name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return "<bytes>"
    return str(source)


def load_bytes(source: str | Path | bytes | bytearray | memoryview, label: str) -> bytes:
    """Return the file content, refusing empty, special, unreadable and oversized files.

    Raises:
        ScanReadError: the file is missing, a folder, not a regular file, unreadable, empty or too large.
        TypeError: `source` is neither a path nor bytes (a programming error, not a bad file).
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    elif isinstance(source, (str, os.PathLike)):
        data = _read_file(Path(source), label)
    else:
        raise TypeError(f"read_scan expects a path or bytes, not {type(source).__name__}")
    if not data:
        raise ScanReadError(label, "file is empty (0 bytes)")
    return data


def _read_file(path: Path, label: str) -> bytes:
    try:
        st = path.stat()
    except OSError as exc:
        raise _os_error(label, exc) from None
    if stat.S_ISDIR(st.st_mode):
        if not os.access(path, os.R_OK | os.X_OK):  # `walk_tree` hands on folders it could not list
            raise ScanReadError(label, "folder cannot be listed (permission denied): the scans in it were not read")
        raise ScanReadError(label, "is a folder, not a file")
    # A FIFO or device would block or never end (e.g. /dev/zero), so refuse before opening.
    if not stat.S_ISREG(st.st_mode):
        raise ScanReadError(label, "not a regular file (a device, pipe or socket)")
    if st.st_size > MAX_FILE_BYTES:
        size, limit = st.st_size / 2**30, MAX_FILE_BYTES // 2**30
        raise ScanReadError(label, f"file is {size:.1f} GiB, over the {limit} GiB limit")
    try:
        with path.open("rb") as fh:
            return fh.read()
    except OSError as exc:
        raise _os_error(label, exc) from None


def _os_error(label: str, exc: OSError) -> ScanReadError:
    if exc.errno == errno.ENOENT:
        return ScanReadError(label, "file not found")
    if exc.errno in (errno.EACCES, errno.EPERM):
        return ScanReadError(label, "permission denied: the file exists but cannot be read (check its permissions)")
    if exc.errno == errno.EISDIR:
        return ScanReadError(label, "is a folder, not a file")
    return ScanReadError(label, f"cannot read the file ({exc.strerror or type(exc).__name__})")


def walk_tree(folder: str | Path) -> Iterator[Path]:
    """Every entry below `folder` that is not a folder, in sorted order; hidden names and __MACOSX skipped.

    Symbolic links to folders are followed, each real folder once, so a link loop ends. Whatever is not
    a folder is yielded, broken links and links in a loop included, and so is a folder that cannot be
    listed: reading them then says why, so nothing below `folder` is skipped without a word.
    """
    seen: set[str] = set()

    def visit(d: Path) -> Iterator[Path]:
        real = os.path.realpath(d)
        if real in seen:
            return
        seen.add(real)
        try:
            with os.scandir(d) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError:
            yield d
            return
        for entry in entries:
            if entry.name.startswith(".") or entry.name == "__MACOSX":
                continue  # .DS_Store, ._* resource forks and friends are never scans
            path = d / entry.name
            try:
                is_dir = entry.is_dir()  # follows symbolic links
            except OSError:
                is_dir = False
            if is_dir:
                yield from visit(path)
            else:
                yield path

    yield from visit(Path(folder))
