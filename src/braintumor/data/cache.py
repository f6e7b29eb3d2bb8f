"""Decode cache: each scan is decoded and preprocessed once per (content, preprocessing), then read as .npy.

Decoding a 512 px JPEG and resizing it costs milliseconds; loading a 224 x 224 uint8 .npy costs
tens of microseconds. Training reads every image once per epoch, so the cache turns the data
loader from CPU-bound decoding into cheap file reads.

Layout under `root` (chosen by the caller; the training default is ``~/.cache/braintumor/decoded``)::

    ROOT/v{CACHE_VERSION}/{preprocess.key()}/{sha1[:2]}/{sha1}.npy

The key is the SHA-1 of the file's bytes, so a file edited in place (new bytes) gets a new entry
and a renamed or copied file reuses the old one. Writes go to a temporary file in the same folder
and are renamed into place with `os.replace`, which is atomic: DataLoader workers and separate
processes may fill the same cache at once, and a reader never sees half an array.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np

from braintumor.data.preprocess import Preprocess
from braintumor.io import ScanReadError, read_scan

log = logging.getLogger(__name__)

# Bump when the stored format or the decoding changes, so old entries are ignored, not misread.
# 2: 16-bit images scaled by the bit depth their values use, not by 65535 (2026-11-24).
CACHE_VERSION = 2


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ScanReadError(str(path), "file not found") from None
    except IsADirectoryError:
        raise ScanReadError(str(path), "is a folder, not a scan file") from None
    except OSError as exc:
        raise ScanReadError(str(path), f"cannot read file ({exc.strerror or exc})") from None


def _decode(data: bytes, path: Path, preprocess: Preprocess) -> np.ndarray:
    """Decode bytes and preprocess them; the one place the cache decodes (tests count calls here)."""
    return preprocess(read_scan(data, name=str(path)).as_uint8())


class DecodeCache:
    """Decoded, preprocessed scans stored as .npy files, keyed by file content and preprocessing.

    Args:
        root: cache folder (created on first write). Several caches with different
            preprocessing can share one root.
        preprocess: the preprocessing applied before storing; part of the key.

    A cache is cheap to pickle, so a `ScanDataset` holding one can go to DataLoader workers.
    """

    def __init__(self, root: str | Path, preprocess: Preprocess) -> None:
        self.root = Path(root).expanduser()
        self.preprocess = preprocess
        self.folder = self.root / f"v{CACHE_VERSION}" / preprocess.key()
        # (path, size, mtime_ns) -> content hash; saves re-hashing unchanged files within a process.
        # Correctness rests on the content hash: the memo only skips hashing when the stat is identical.
        self._memo: dict[tuple[str, int, int], str] = {}
        self._write_failed = False

    def __repr__(self) -> str:
        return f"DecodeCache({str(self.folder)!r})"

    def entry_path(self, digest: str) -> Path:
        """Where the array for a content hash is stored."""
        return self.folder / digest[:2] / f"{digest}.npy"

    def _stat_key(self, path: Path) -> tuple[str, int, int] | None:
        try:
            st = path.stat()
        except OSError:
            return None  # reading the bytes will raise the proper error
        return (str(path), st.st_size, st.st_mtime_ns)

    def get(self, path: str | Path) -> np.ndarray:
        """The preprocessed uint8 (S, S) array of one scan file, decoding it only on a cache miss.

        Raises:
            braintumor.io.ScanReadError: the file is missing or cannot be read as a scan.
        """
        path = Path(path)
        stat_key = self._stat_key(path)
        digest = self._memo.get(stat_key) if stat_key else None
        if digest is not None:
            cached = self._load(self.entry_path(digest))
            if cached is not None:
                return cached
        data = _read_bytes(path)
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if stat_key:
            self._memo[stat_key] = digest
        entry = self.entry_path(digest)
        cached = self._load(entry)
        if cached is not None:
            return cached
        arr = _decode(data, path, self.preprocess)
        self._store(entry, arr)
        return arr

    def __contains__(self, path: str | Path) -> bool:
        """True when the file's current content already has an entry (hashes the file; never decodes)."""
        try:
            digest = hashlib.sha1(_read_bytes(Path(path)), usedforsecurity=False).hexdigest()
        except ScanReadError:
            return False
        return self.entry_path(digest).is_file()

    def _load(self, entry: Path) -> np.ndarray | None:
        size = self.preprocess.image_size
        try:
            arr = np.load(entry, allow_pickle=False)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:  # damaged entry (disk error, manual edit): rebuild it
            log.warning("decode cache: ignoring unreadable entry %s (%s)", entry, exc)
            return None
        if arr.dtype != np.uint8 or arr.shape != (size, size):
            log.warning("decode cache: ignoring entry %s with dtype %s shape %s", entry, arr.dtype, arr.shape)
            return None
        return arr

    def _store(self, entry: Path, arr: np.ndarray) -> None:
        try:
            entry.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=entry.parent, prefix=f".{entry.stem}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as f:
                    np.save(f, arr, allow_pickle=False)
                os.replace(tmp, entry)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            # A full or read-only disk slows training down but must not stop it; say so once.
            if not self._write_failed:
                log.warning("decode cache: cannot write to %s (%s); continuing without caching", self.folder, exc)
                self._write_failed = True


class UncachedDecoder:
    """Same `get(path)` interface as `DecodeCache`, decoding every time (prediction, one-off reads)."""

    def __init__(self, preprocess: Preprocess) -> None:
        self.preprocess = preprocess

    def get(self, path: str | Path) -> np.ndarray:
        """Read and preprocess one scan file.

        Raises:
            braintumor.io.ScanReadError: the file is missing or cannot be read as a scan.
        """
        path = Path(path)
        return _decode(_read_bytes(path), path, self.preprocess)
