"""Blobs (photos, recordings) uploaded by boxes: SHA-256-addressed, resumable, verified.

``BlobStore`` keeps them on disk; ``blob_routes(store, authorize)`` serves the upload protocol
(documented in ``hub.blobs.routes`` and ``contracts.blobs``).
"""

from __future__ import annotations

from hub.blobs.routes import Authorize, blob_routes
from hub.blobs.store import BlobMeta, BlobStore

__all__ = ["Authorize", "BlobMeta", "BlobStore", "blob_routes"]
