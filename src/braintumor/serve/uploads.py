"""Read uploaded files from a multipart/form-data request into memory, within limits, never onto disk.

Starlette's own form parser spools files over 1 MB to temporary files; scans are medical data, so this
parser (python-multipart's streaming `MultipartParser`, fed chunk by chunk) keeps them in memory and
stops reading as soon as a limit is crossed. The client's content type is ignored: the reader sniffs the
bytes. File names are only labels for the response; one that carries a path is refused.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request


class ApiError(Exception):
    """A request the service refuses: HTTP `status`, a `message` saying what to change, per-file reasons."""

    def __init__(self, status: int, message: str, files: list[dict] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.files = status, message, files


@dataclass(frozen=True)
class Upload:
    """One uploaded file: its (checked) name and its bytes."""

    name: str
    data: bytes


@dataclass(frozen=True)
class UploadLimits:
    max_file_bytes: int
    max_request_bytes: int
    max_files: int


@dataclass
class ByteBudget:
    """Bytes of request bodies being received, all requests together (the event loop is one thread).

    Bytes are counted as they arrive, not as a Content-Length promises them, so a client that trickles a
    byte at a time holds next to nothing, and filling the budget takes really sending that much data.
    """

    limit: int
    used: int = 0

    def take(self, n: int) -> None:
        if self.used + n > self.limit:
            raise ApiError(503, "the server is receiving too many uploads at once; retry in a few seconds")
        self.used += n

    def give(self, n: int) -> None:
        self.used -= n


@dataclass
class _Part:
    headers: dict[str, str] = field(default_factory=dict)
    data: bytearray = field(default_factory=bytearray)


def _mb(n: int) -> str:
    return f"{n / 2**20:g} MB"


def check_name(raw: str, index: int) -> str:
    """A safe label for an uploaded file name; a name with a path or control characters is refused."""
    name = raw.strip()
    if not name:
        return f"upload-{index + 1}"
    if "/" in name or "\\" in name or name in (".", ".."):
        raise ApiError(400, f"file name {name[:100]!r} contains a path; send the bare file name")
    if len(name) > 255:
        raise ApiError(400, f"file name {name[:60]!r}... is longer than 255 characters")
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise ApiError(400, f"file name {name[:100]!r} contains control characters")
    return name


class _Collector:
    """Callbacks of the streaming parser: gathers parts and enforces the per-file and file-count limits."""

    def __init__(self, limits: UploadLimits) -> None:
        self.limits = limits
        self.parts: list[_Part] = []
        self.ended = False
        self._field = self._value = b""

    def callbacks(self) -> dict:
        return {
            "on_part_begin": self._on_part_begin,
            "on_header_field": self._on_field,
            "on_header_value": self._on_value,
            "on_header_end": self._on_header_end,
            "on_part_data": self._on_data,
            "on_end": self._on_end,
        }

    def _on_part_begin(self) -> None:
        # every part counts, named or not: parts without a file would otherwise cost parsing time and memory
        if len(self.parts) >= self.limits.max_files:
            raise ApiError(413, f"too many parts: at most {self.limits.max_files} files per request")
        self.parts.append(_Part())

    def _on_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _on_header_end(self) -> None:
        key = self._field.decode("latin-1").strip().lower()
        # latin-1 keeps the raw bytes: parse_options_header encodes the value back to latin-1, and the file
        # name is then decoded as UTF-8 (what browsers send) in `_files`
        self.parts[-1].headers[key] = self._value.decode("latin-1").strip()
        self._field = self._value = b""

    def _on_data(self, data: bytes, start: int, end: int) -> None:
        part = self.parts[-1]
        part.data += data[start:end]
        if len(part.data) > self.limits.max_file_bytes:
            name = _disposition(part)[1]
            which = f"file {name[:100]!r}" if name else f"part {len(self.parts)}"
            raise ApiError(413, f"{which} is larger than the {_mb(self.limits.max_file_bytes)} per-file limit")

    def _on_end(self) -> None:
        self.ended = True


def _boundary(request: Request) -> bytes:
    ctype, options = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        shown = ctype.decode("latin-1")[:60] or "none"
        raise ApiError(415, f"send the scans as multipart/form-data (got content type {shown})")
    boundary = options.get(b"boundary")
    if not boundary or len(boundary) > 200:
        raise ApiError(400, "malformed multipart request: the content type has no valid boundary")
    return boundary


async def read_uploads(
    request: Request, limits: UploadLimits, budget: ByteBudget, fields: tuple[str, ...] = ("files", "file")
) -> list[Upload]:
    """The files of a multipart/form-data request in form fields `fields`, in order.

    The bytes held while reading count against `budget` until the body is complete.

    Raises:
        ApiError: 415 not multipart, 413 over a size or count limit, 400 malformed body, no file,
            or a file name with a path; 503 when `budget` is spent.
    """
    boundary = _boundary(request)
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limits.max_request_bytes:
        raise ApiError(413, f"request is larger than the {_mb(limits.max_request_bytes)} limit")
    collector = _Collector(limits)
    parser = MultipartParser(boundary, collector.callbacks(), max_header_count=16)
    received = 0
    try:
        async for chunk in request.stream():
            if received + len(chunk) > limits.max_request_bytes:
                raise ApiError(413, f"request is larger than the {_mb(limits.max_request_bytes)} limit")
            budget.take(len(chunk))
            received += len(chunk)
            parser.write(chunk)
        parser.finalize()
    except MultipartParseError as exc:
        raise ApiError(400, f"malformed multipart body ({str(exc)[:120]})") from None
    except ClientDisconnect:
        raise ApiError(400, "the client closed the connection before the upload was complete") from None
    finally:
        budget.give(received)
    if not collector.ended:
        raise ApiError(400, "malformed multipart body: it ends before the closing boundary")
    return _files(collector.parts, fields)


def _disposition(part: _Part) -> tuple[str, str | None]:
    """The form field name and the file name (None: not a file) of a part, decoded as UTF-8."""
    _, options = parse_options_header(part.headers.get("content-disposition", ""))
    filename = options.get(b"filename")
    field_name = options.get(b"name", b"").decode("utf-8", "replace")
    return field_name, None if filename is None else filename.decode("utf-8", "replace")


def _files(parts: list[_Part], fields: tuple[str, ...]) -> list[Upload]:
    uploads = []
    for part in parts:
        name, filename = _disposition(part)
        if name in fields and filename is not None:
            uploads.append(Upload(check_name(filename, len(uploads)), bytes(part.data)))
    if not uploads:
        raise ApiError(400, f"no file found: send the scans in the multipart form field '{fields[0]}'")
    return uploads
