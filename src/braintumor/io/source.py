"""Turn a path or bytes into (bytes, label), with one clear error per way a file can fail to open."""

from __future__ import annotations

import errno
import os
import stat
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
