"""The box's database: presence counters, cases, staged photos and recordings, the outbox."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import av
from sqlite_utils import Database

from contracts.cases import CASE_REGISTERED, CaseForm, CaseRegistered, PhotoRef, case_number
from contracts.recordings import (
    RECORDER_LAYOUT,
    RECORDING_ADDED,
    RECORDING_MIME,
    RecordedStream,
    RecordingAdded,
)
from edge.errors import KeyReused
from edge.media.errors import RecordingError
from edge.media.recorder import RecordedFile
from edge.store import outbox
from edge.store.migrations import migrations
from runtime.sqlite import Store


@dataclass(frozen=True, slots=True)
class Receipt:
    case_no: str
    query_code: str
    registered_at: dt.datetime
    seq: int
    replayed: bool = False
    """The receipt of an earlier registration with the same idempotency key."""


@dataclass(frozen=True, slots=True)
class SyncState:
    outbox_head: int
    acked_through: int
    last_event_at: str | None

    @property
    def depth(self) -> int:
        return self.outbox_head - self.acked_through


BlobKind = Literal["photo", "recording"]


@dataclass(frozen=True, slots=True)
class StagedBlob:
    """A file waiting for the hub to verify it: a photo of a registered case or a recording."""

    kind: BlobKind
    sha256: str
    path: Path
    mime: str


@dataclass(frozen=True, slots=True)
class StagedRecording:
    """What ``add_recording`` did: the chain event's ``seq``; ``added`` is False when the
    file was already in the chain (the same SHA-256 added before)."""

    sha256: str
    seq: int
    added: bool


def recording_streams(path: Path) -> list[RecordedStream]:
    """Each stream of a recorder file with its codec, packet count and duration (demuxes the
    whole file; blocking: run it in a thread). Raises ``RecordingError`` naming the file when
    it does not open or does not have the recorder's layout."""
    try:
        with av.open(str(path)) as container:
            streams = [(s.index, s.type, s.codec_context.name) for s in container.streams]
            if not streams or len(streams) > len(RECORDER_LAYOUT):
                raise RecordingError(
                    f"recording {str(path)!r} has {len(streams)} streams; the recorder writes "
                    f"{len(RECORDER_LAYOUT)}"
                )
            packets = [0] * len(streams)
            first: list[float | None] = [None] * len(streams)
            end = [0.0] * len(streams)
            for packet in container.demux():
                if packet.pts is None or packet.time_base is None or not packet.size:
                    continue
                i = packet.stream.index
                t0 = float(packet.pts * packet.time_base)
                packets[i] += 1
                seen = first[i]
                first[i] = t0 if seen is None else min(seen, t0)
                end[i] = max(end[i], t0 + float((packet.duration or 0) * packet.time_base))
    except av.FFmpegError as exc:
        raise RecordingError(f"recording {str(path)!r} does not open: {exc}") from None
    found = []
    for i, type_, codec in streams:
        side, kind = RECORDER_LAYOUT[i]
        if type_ != kind:
            raise RecordingError(
                f"recording {str(path)!r}: stream {i} is {type_}, the recorder's "
                f"layout has {kind} there"
            )
        start = first[i]
        found.append(
            RecordedStream(
                index=i,
                side=side,
                kind=kind,
                codec=codec,
                packets=packets[i],
                duration_s=round(end[i] - start, 3) if start is not None else 0.0,
            )
        )
    return found


def _registration(db: Database, key: str, request_hash: str) -> Receipt | None:
    row = db.execute(
        "SELECT request_hash, case_no, query_code, registered_at, seq FROM registrations "
        "WHERE key = ?",
        [key],
    ).fetchone()
    if row is None:
        return None
    if row[0] != request_hash:
        raise KeyReused(
            f"idempotency key {key!r} was used for case {row[1]} with other fields or photos"
        )
    return Receipt(row[1], row[2], dt.datetime.fromisoformat(row[3]), row[4], replayed=True)


def _meta(db: Database, key: str) -> int:
    return int(db.execute("SELECT value FROM meta WHERE key = ?", [key]).fetchone()[0])


class EdgeStore(Store):
    def __init__(self, path: Path, node: str = "") -> None:
        super().__init__(path, migrations, synchronous="FULL")
        self.node = node

    async def next_bd_seq(self) -> int:
        """Increment and return the birth/death sequence, durably, before a connect."""

        def bump(db: Database) -> int:
            with db.atomic():
                db.execute("UPDATE meta SET value = value + 1 WHERE key = 'bd_seq'")
                return _meta(db, "bd_seq")

        return await self.run(bump)

    async def bd_seq(self) -> int:
        return await self.run(lambda db: _meta(db, "bd_seq"))

    # -- cases ----------------------------------------------------------------------------

    async def register_case(
        self,
        form: CaseForm,
        township: str,
        box_no: int,
        photos: list[str] = (),  # type: ignore[assignment]
        key: str | None = None,
    ) -> Receipt:
        """Store the case, attach staged photos and append ``case.registered``: one
        transaction, durable (synchronous=FULL) before this returns.

        With ``key`` (the request's idempotency key), a registration already made with that
        key is not made again: its receipt comes back (``replayed``). The same key with a
        different form or photos raises ``KeyReused``."""
        request_hash = hashlib.sha256(
            json.dumps([form.model_dump(mode="json"), list(photos)], sort_keys=True).encode()
        ).hexdigest()

        def write(db: Database) -> Receipt:
            now = dt.datetime.now(dt.UTC)
            day = now.astimezone(dt.timezone(dt.timedelta(hours=8))).date()  # Beijing time
            code = f"{secrets.randbelow(10**6):06d}"
            with db.atomic():
                if key is not None and (earlier := _registration(db, key, request_hash)):
                    return earlier
                db.execute(
                    "INSERT INTO case_counter (day, n) VALUES (?, 1) "
                    "ON CONFLICT(day) DO UPDATE SET n = n + 1",
                    [day.isoformat()],
                )
                n = db.execute(
                    "SELECT n FROM case_counter WHERE day = ?", [day.isoformat()]
                ).fetchone()[0]
                case_no = case_number(township, box_no, day, n)
                refs = []
                for sha in photos:
                    row = db.execute(
                        "SELECT size, mime, case_no FROM photos WHERE sha256 = ?", [sha]
                    ).fetchone()
                    if row is None or row[2] is not None:
                        raise KeyError(f"photo {sha!r} is not a staged photo")
                    refs.append(PhotoRef(sha256=sha, size=row[0], mime=row[1]))
                    db.execute("UPDATE photos SET case_no = ? WHERE sha256 = ?", [case_no, sha])
                db.table("cases").insert(
                    {
                        "case_no": case_no,
                        "registered_at": now.isoformat(),
                        **form.model_dump(mode="json"),
                    }
                )
                body = CaseRegistered(
                    case_no=case_no,
                    township=township,
                    registered_at=now,
                    form=form,
                    query_code=code,
                    photos=refs,
                )
                event = outbox.append_event(
                    db, self.node, CASE_REGISTERED, body.model_dump(mode="json")
                )
                if key is not None:
                    db.table("registrations").insert(
                        {
                            "key": key,
                            "request_hash": request_hash,
                            "case_no": case_no,
                            "query_code": code,
                            "registered_at": now.isoformat(),
                            "seq": event.seq,
                        }
                    )
            return Receipt(case_no, code, now, event.seq)

        return await self.run(write)

    async def stage_photo(self, sha256: str, path: Path, size: int, mime: str) -> None:
        def write(db: Database) -> None:
            with db.atomic():
                db.execute(
                    "INSERT OR IGNORE INTO photos (sha256, path, size, mime, taken_at, uploaded) "
                    "VALUES (?, ?, ?, ?, ?, 0)",
                    [sha256, str(path), size, mime, dt.datetime.now(dt.UTC).isoformat()],
                )

        await self.run(write)

    # -- recordings -----------------------------------------------------------------------

    async def add_recording(
        self,
        case_no: str,
        session_id: str,
        rec: RecordedFile,
        *,
        started_at: dt.datetime | None = None,
    ) -> StagedRecording:
        """Seal a finished (or recovered) recording file of a session of ``case_no`` into the
        chain (``case.recording_added`` with its SHA-256, size, duration and streams) and stage
        it for upload: one transaction, durable before this returns. Adding the same SHA-256
        again changes nothing and answers the first event's ``seq``.

        ``started_at`` defaults to the file's modification time less its duration (the
        recorder writes up to its last packet). Raises ``KeyError`` for a case this box did
        not register, ``ValueError`` for a file already added to another case, and
        ``RecordingError`` for a file that is not a recorder file."""
        streams = await asyncio.to_thread(recording_streams, rec.path)
        if started_at is None:
            mtime = (await asyncio.to_thread(rec.path.stat)).st_mtime
            started_at = dt.datetime.fromtimestamp(mtime - rec.duration, dt.UTC)
        body = RecordingAdded(
            case_no=case_no,
            session_id=session_id,
            sha256=rec.sha256,
            size=rec.size,
            mime=RECORDING_MIME,
            duration_s=round(rec.duration, 3),
            started_at=started_at,
            streams=streams,
        )

        def write(db: Database) -> StagedRecording:
            with db.atomic():
                if not db.execute("SELECT 1 FROM cases WHERE case_no = ?", [case_no]).fetchone():
                    raise KeyError(f"case {case_no!r} is not a case of this box")
                row = db.execute(
                    "SELECT case_no, seq FROM recordings WHERE sha256 = ?", [rec.sha256]
                ).fetchone()
                if row is not None:
                    if row[0] != case_no:
                        raise ValueError(
                            f"recording {rec.sha256} is already in case {row[0]!r}, not {case_no!r}"
                        )
                    return StagedRecording(rec.sha256, int(row[1]), added=False)
                event = outbox.append_event(
                    db, self.node, RECORDING_ADDED, body.model_dump(mode="json")
                )
                db.table("recordings").insert(
                    {
                        "sha256": rec.sha256,
                        "case_no": case_no,
                        "session_id": session_id,
                        "path": str(rec.path),
                        "size": rec.size,
                        "mime": RECORDING_MIME,
                        "duration_s": body.duration_s,
                        "started_at": started_at.isoformat(),
                        "seq": event.seq,
                        "uploaded": 0,
                    }
                )
            return StagedRecording(rec.sha256, event.seq, added=True)

        return await self.run(write)

    async def recordings(self, case_no: str) -> list[dict[str, object]]:
        """The recordings of ``case_no`` in the order they were recorded."""
        return await self.run(
            lambda db: list(
                db.query(
                    "SELECT * FROM recordings WHERE case_no = ? ORDER BY started_at", [case_no]
                )
            )
        )

    # -- blob uploads ---------------------------------------------------------------------

    async def blobs_to_upload(self) -> list[StagedBlob]:
        """Every file the hub has not verified yet: photos of registered cases first (small,
        and they complete the case record), then recordings, each in the order taken."""

        def read(db: Database) -> list[StagedBlob]:
            photos = db.execute(
                "SELECT sha256, path, mime FROM photos WHERE case_no IS NOT NULL AND uploaded = 0 "
                "ORDER BY taken_at"
            ).fetchall()
            recordings = db.execute(
                "SELECT sha256, path, mime FROM recordings WHERE uploaded = 0 ORDER BY started_at"
            ).fetchall()
            return [StagedBlob("photo", s, Path(p), m) for s, p, m in photos] + [
                StagedBlob("recording", s, Path(p), m) for s, p, m in recordings
            ]

        return await self.run(read)

    async def mark_blob_uploaded(self, blob: StagedBlob) -> None:
        """The hub verified ``blob``: it leaves the upload queue."""
        table = {"photo": "photos", "recording": "recordings"}[blob.kind]

        def write(db: Database) -> None:
            with db.atomic():
                db.execute(f"UPDATE {table} SET uploaded = 1 WHERE sha256 = ?", [blob.sha256])

        await self.run(write)

    async def cases(self, limit: int = 100) -> list[dict[str, object]]:
        return await self.run(
            lambda db: list(
                db.query("SELECT * FROM cases ORDER BY registered_at DESC LIMIT ?", [limit])
            )
        )

    # -- outbox ---------------------------------------------------------------------------

    async def pending(self, after: int, limit: int) -> list[tuple[int, bytes]]:
        return await self.run(lambda db: outbox.pending(db, after, limit))

    async def mark_acked(self, through: int) -> int:
        """Record the hub's cumulative ack (never moves backwards); returns the stored value."""

        def write(db: Database) -> int:
            with db.atomic():
                db.execute(
                    "UPDATE meta SET value = max(value, ?) WHERE key = 'acked_through'",
                    [min(through, outbox.head(db))],
                )
                return _meta(db, "acked_through")

        return await self.run(write)

    async def sync_state(self) -> SyncState:
        def read(db: Database) -> SyncState:
            last = db.execute("SELECT ts FROM outbox ORDER BY seq DESC LIMIT 1").fetchone()
            return SyncState(outbox.head(db), _meta(db, "acked_through"), last[0] if last else None)

        return await self.run(read)
