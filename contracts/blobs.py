"""Blob uploads (photos, recordings) from a box to its hub: the protocol's names and rules.

Blobs never ride MQTT. A box uploads each one over HTTP to ``/api/v1/blobs/{sha256}``, where
``sha256`` (64 lowercase hex digits) is the SHA-256 of the whole blob: the address is the
checksum, so an upload is idempotent and a finished blob is verified before it is kept. The
protocol is tus-like (``hub/blobs/routes.py`` documents every answer):

- ``POST`` with ``Upload-Length: N`` (and optionally ``Blob-Content-Type``) declares the blob;
- ``HEAD`` answers ``Upload-Offset``, ``Upload-Length`` and ``Blob-Complete: true|false``;
  ``GET .../status`` answers the same as a ``BlobStatus`` JSON body;
- ``PATCH`` with ``Upload-Offset: k`` and ``Content-Type: application/offset+octet-stream``
  appends the next bytes; the hub verifies the hash when the offset reaches the length;
- ``GET`` returns a complete blob.

Pure: constants, header parsing and the status model; no I/O.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from contracts.errors import ContractError
from contracts.wire import WireModel

BLOBS_PATH = "/api/v1/blobs"
"""The route prefix; a blob lives at ``BLOBS_PATH/{sha256}``."""

UPLOAD_LENGTH = "Upload-Length"
"""Request header of ``POST``, response header of ``HEAD``: the blob's declared byte length."""
UPLOAD_OFFSET = "Upload-Offset"
"""Request header of ``PATCH`` (where the body starts), response header: bytes the hub holds."""
BLOB_COMPLETE = "Blob-Complete"
"""Response header: ``true`` once the whole blob is stored and its SHA-256 verified."""
BLOB_CONTENT_TYPE = "Blob-Content-Type"
"""Optional request header of ``POST``: the media type ``GET`` will answer with."""
PATCH_CONTENT_TYPE = "application/offset+octet-stream"
"""The only ``Content-Type`` a ``PATCH`` body may have."""

DEFAULT_CONTENT_TYPE = "application/octet-stream"
DEFAULT_CHUNK_BYTES = 256 * 1024
"""Bytes a box sends in one ``PATCH``."""
MAX_PATCH_BYTES = 8 * 1024 * 1024
"""Largest ``PATCH`` body the hub accepts (it streams the body to disk, never buffers it)."""
MAX_BLOB_BYTES = 64 * 1024 * 1024
"""Default largest blob a hub accepts; larger declarations get 413."""

_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_DECIMAL_RE = re.compile(r"[0-9]{1,19}")
_MEDIA_TYPE_RE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")


class InvalidBlobRequest(ContractError):
    """A blob address, header or status does not meet the upload protocol."""

    code = "invalid_blob_request"


def is_sha256(value: object) -> bool:
    """True if ``value`` is a SHA-256 hex digest in the canonical form (64 lowercase hex)."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def check_sha256(value: str) -> str:
    """Return ``value`` if it is a canonical SHA-256 hex digest, else raise saying why."""
    if not is_sha256(value):
        raise InvalidBlobRequest(f"blob address must be 64 lowercase hex digits, got {value!r}")
    return value


def blob_path(sha256: str) -> str:
    """The URL path of one blob, e.g. ``/api/v1/blobs/<sha256>``."""
    return f"{BLOBS_PATH}/{check_sha256(sha256)}"


def status_path(sha256: str) -> str:
    """The URL path of one blob's JSON status."""
    return f"{blob_path(sha256)}/status"


def parse_count(header: str, value: str | None) -> int:
    """A non-negative decimal header value (no sign, no spaces), else ``InvalidBlobRequest``."""
    if value is None:
        raise InvalidBlobRequest(f"missing header {header}")
    if not _DECIMAL_RE.fullmatch(value):
        raise InvalidBlobRequest(f"{header} must be a non-negative decimal integer, got {value!r}")
    return int(value)


def parse_content_type(value: str | None) -> str:
    """The media type given at ``POST`` (lowercased, parameters refused), or the default."""
    if value is None or not value.strip():
        return DEFAULT_CONTENT_TYPE
    media = value.strip().lower()
    if not _MEDIA_TYPE_RE.fullmatch(media):
        raise InvalidBlobRequest(
            f"{BLOB_CONTENT_TYPE} must be a bare media type like image/jpeg, got {value!r}"
        )
    return media


def format_bool(value: bool) -> str:
    """The ``Blob-Complete`` header value."""
    return "true" if value else "false"


def _sha(value: str) -> str:
    try:
        return check_sha256(value)
    except InvalidBlobRequest as exc:
        raise ValueError(str(exc)) from None


Sha256 = Annotated[str, AfterValidator(_sha)]


class BlobStatus(WireModel):
    """What the hub holds of one blob: the body of ``GET .../status`` and of ``POST``."""

    v: Literal[1] = 1
    sha256: Sha256
    length: int = Field(gt=0, description="declared byte length")
    offset: int = Field(ge=0, description="bytes the hub holds; the next PATCH starts here")
    complete: bool = Field(description="stored whole and its SHA-256 verified")
    content_type: str = DEFAULT_CONTENT_TYPE

    @model_validator(mode="after")
    def _consistent(self) -> BlobStatus:
        if self.offset > self.length:
            raise ValueError(f"offset {self.offset} exceeds length {self.length}")
        if self.complete and self.offset != self.length:
            raise ValueError(f"complete blob with offset {self.offset} != length {self.length}")
        return self
