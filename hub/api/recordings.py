"""Session recordings of a case: the list, and playback in the browser.

``GET /api/v1/cases/{case_no}/recordings`` → ``{"case_no", "recordings": [...]}``: each
recording file the box sealed into its chain (``case.recording_added``) with its session,
size, duration, start, whether the hub has verified its SHA-256, and per side (``box``, the
township box's camera and microphone; ``official``, the official's picture and sound) the
playback URL once verified.

``GET /api/v1/cases/{case_no}/recordings/{sha256}.mp4?side=box|official`` → that side of the
recording as MP4 (H.264 and AAC copied from the MPEG-TS the box recorded, never re-encoded;
``Range`` supported, for seeking). The MP4 is made once per (file, side) and cached on disk
under ``state_dir/recording-cache``, up to ``recording_cache_mb`` (the least recently played
go first, :func:`evict`). 400 for another ``side``, 404 for a recording the case
does not have or a side it holds no media of, 409 while the file is not verified yet.

Both are scoped like the case itself (:func:`hub.api.workflow.visible`): outside the caller's
jurisdiction, unit or role → 403, audited as ``case.denied``. Recordings are personal data:
every playback request is audited as ``pii.read`` with ``field: recording``, the ``sha256``
and the ``side``, its target the case.

While the app runs, a sweep (``recording_verifier``, registered with the routes) marks a
recording verified once its blob is complete in the blob store, which may make the case
complete (:mod:`hub.store.projection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import av
import orjson
from aiohttp import web
from sqlite_utils import Database

from contracts.recordings import SIDE_LABELS, SIDES, RecordedStream, Side
from hub.api.context import CTX, claims, client_of, ctx, error
from hub.api.workflow import may_see, refuse
from hub.blobs.store import BlobStore
from hub.store.db import HubStore, now_iso
from hub.store.projection import mark_recordings_verified, pending_recordings
from runtime.sqlite import transaction

log = logging.getLogger(__name__)

BLOBS = web.AppKey("recording_blobs", BlobStore)
CACHE_DIR = "recording-cache"
VERIFY_INTERVAL = 1.0
"""Seconds between sweeps for recordings whose blob has become complete."""
_LOCKS = web.AppKey("recording_locks", dict)
RECENT_SECONDS = 60.0
"""A cached MP4 played this recently is never evicted (it may be being sent)."""


class RemuxError(Exception):
    """A recording could not be remuxed to MP4."""


def remux(source: Path, indexes: list[int], target: Path) -> float:
    """Copy streams ``indexes`` of the MPEG-TS ``source`` into the MP4 ``target`` without
    re-encoding (timestamps moved so the side's first packet starts at 0; ``faststart`` puts the
    index first, so a browser starts playing before it has the whole file). A file cut off by
    a crash ends at its last whole packet. Returns the duration in seconds. Blocking."""
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with (
            av.open(str(source)) as inp,
            av.open(str(partial), "w", format="mp4", options={"movflags": "+faststart"}) as out,
        ):
            chosen = [inp.streams[i] for i in indexes]
            mapping = {s.index: out.add_stream_from_template(s) for s in chosen}
            starts = [
                float(s.start_time * s.time_base)
                for s in chosen
                if s.start_time is not None and s.time_base is not None
            ]
            origin = min(starts, default=0.0)  # the side's first packet, whichever stream
            end = 0.0
            demuxer = inp.demux(chosen)
            while True:
                try:
                    packet = next(demuxer)
                except StopIteration:
                    break
                except av.FFmpegError as exc:  # a torn tail: keep what came before
                    log.warning("recording %s: demux stopped early: %s", source.name, exc)
                    break
                if packet.dts is None or packet.pts is None or packet.time_base is None:
                    continue
                tb = packet.time_base
                shift = round(origin / tb)
                packet.dts, packet.pts = packet.dts - shift, packet.pts - shift
                end = max(end, float((packet.pts + (packet.duration or 0)) * tb))
                packet.stream = mapping[packet.stream.index]
                out.mux(packet)
        partial.replace(target)
    except (av.FFmpegError, OSError, IndexError) as exc:
        partial.unlink(missing_ok=True)
        raise RemuxError(f"cannot remux {source.name} streams {indexes} to MP4: {exc}") from exc
    return end


def evict(cache: Path, budget: int, now: float) -> list[Path]:
    """Delete the least recently played MP4s in ``cache`` (by mtime, which playback touches)
    until the rest fit in ``budget`` bytes, keeping any played in the last ``RECENT_SECONDS``;
    returns what was deleted. Blocking."""
    files = []
    for path in cache.glob("*.mp4"):  # a remux under way is a .tmp
        with contextlib.suppress(FileNotFoundError):
            st = path.stat()
            files.append((st.st_mtime, st.st_size, path))
    total, deleted = sum(size for _, size, _ in files), []
    for mtime, size, path in sorted(files):
        if total <= budget:
            break
        if now - mtime < RECENT_SECONDS:
            continue
        path.unlink(missing_ok=True)
        total -= size
        deleted.append(path)
    return deleted


def _played(target: Path) -> bool:
    """Mark ``target`` as just played; ``False`` if it is not there (never made, or evicted)."""
    try:
        os.utime(target)
    except FileNotFoundError:
        return False
    return True


def _streams(row: dict[str, Any]) -> list[RecordedStream]:
    return [RecordedStream.model_validate(s) for s in orjson.loads(row["streams"])]


def _side_indexes(row: dict[str, Any], side: Side) -> list[int]:
    """Indexes of ``side``'s streams that hold media, video first."""
    found = [s for s in _streams(row) if s.side == side and s.packets]
    return [s.index for s in sorted(found, key=lambda s: s.kind != "video")]


def _side_duration(row: dict[str, Any], side: Side) -> float:
    return max((s.duration_s for s in _streams(row) if s.side == side and s.packets), default=0)


async def _case_and_recordings(
    request: web.Request, case_no: str, sha256: str | None = None
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    def read(db: Database) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
        cases = list(
            db.query(
                "SELECT case_no, township, category, unit_id FROM cases WHERE case_no = ?",
                [case_no],
            )
        )
        if not cases:
            return None, []
        where, args = "case_no = ?", [case_no]
        if sha256 is not None:
            where, args = where + " AND sha256 = ?", [*args, sha256]
        rows = list(
            db.query(
                f"SELECT * FROM case_recordings WHERE {where} ORDER BY started_at, sha256", args
            )
        )
        return cases[0], rows

    return await ctx(request).store.run(read)


def _listed(case_no: str, row: dict[str, Any]) -> dict[str, Any]:
    verified = bool(row["verified"])
    sides = []
    for side in SIDES:
        if not _side_indexes(row, side):
            continue
        zh, en = SIDE_LABELS[side]
        sides.append(
            {
                "side": side,
                "label_zh": zh,
                "label_en": en,
                "duration_s": _side_duration(row, side),
                "url": (
                    f"/api/v1/cases/{case_no}/recordings/{row['sha256']}.mp4?side={side}"
                    if verified
                    else None
                ),
            }
        )
    return {
        "sha256": row["sha256"],
        "session_id": row["session_id"],
        "size": row["size"],
        "mime": row["mime"],
        "duration_s": row["duration_s"],
        "started_at": row["started_at"],
        "verified": verified,
        "verified_at": row["verified_at"],
        "sides": sides,
    }


async def list_recordings(request: web.Request) -> web.Response:
    case_no = request.match_info["case_no"]
    case, rows = await _case_and_recordings(request, case_no)
    if case is None:
        return error(404, f"no case {case_no!r}")
    if not may_see(request, case):
        return await refuse(request, case_no)
    return web.json_response(
        {"case_no": case_no, "recordings": [_listed(case_no, r) for r in rows]}
    )


async def play_recording(request: web.Request) -> web.StreamResponse:
    case_no, sha = request.match_info["case_no"], request.match_info["sha256"]
    side = request.query.get("side", "box")
    if side not in SIDES:
        return error(400, f"side must be one of {', '.join(SIDES)}, got {side!r}")
    case, rows = await _case_and_recordings(request, case_no, sha)
    if case is None:
        return error(404, f"no case {case_no!r}")
    if not may_see(request, case):
        return await refuse(request, case_no)
    if not rows:
        return error(404, f"case {case_no!r} has no recording {sha}")
    row = rows[0]
    indexes = _side_indexes(row, side)
    if not indexes:
        return error(404, f"recording {sha} holds nothing of side {side!r}")
    blobs = request.app[BLOBS]
    source = await asyncio.to_thread(blobs.path_of, sha)
    if not row["verified"] or source is None:
        return error(409, f"recording {sha} is not uploaded and verified yet")
    config = ctx(request).config
    target = config.state_dir / CACHE_DIR / f"{sha}-{side}.mp4"
    lock = request.app[_LOCKS].setdefault(target.name, asyncio.Lock())
    async with lock:
        if not await asyncio.to_thread(_played, target):
            await asyncio.to_thread(target.parent.mkdir, parents=True, exist_ok=True)
            try:
                seconds = await asyncio.to_thread(remux, source, indexes, target)
            except RemuxError as exc:
                log.error("case %s: %s", case_no, exc)
                return error(500, str(exc))
            log.info("case %s: recording %s side %s remuxed (%.1f s)", case_no, sha, side, seconds)
            budget = config.recording_cache_mb * 1024 * 1024
            deleted = await asyncio.to_thread(evict, target.parent, budget, time.time())
            if deleted:
                log.info("recording cache: evicted %d least recently played MP4s", len(deleted))
    who = claims(request)
    await ctx(request).store.audit(
        who.sub,
        "pii.read",
        target=case_no,
        client=client_of(request),
        field="recording",
        sha256=sha,
        side=side,
        range=request.headers.get("Range", ""),
    )
    return web.FileResponse(
        target,
        headers={"Content-Type": "video/mp4", "Cache-Control": "private, no-store"},
    )


async def verify_recordings(store: HubStore, blobs: BlobStore) -> list[str]:
    """One sweep: mark verified the recordings whose blob is complete; returns their SHA-256."""
    pending = await store.run(pending_recordings)
    done = [sha for sha in pending if await blobs.is_complete(sha)]
    if done:

        def write(db: Database) -> None:
            with transaction(db):
                mark_recordings_verified(db, done, now_iso())

        await store.run(write)
        log.info("verified %d recording(s)", len(done))
    return done


async def _verify_forever(store: HubStore, blobs: BlobStore, interval: float) -> None:
    while True:
        try:
            await verify_recordings(store, blobs)
        except Exception:  # a bad sweep must not end the next ones
            log.exception("recording verification sweep failed")
        await asyncio.sleep(interval)


def recording_verifier(
    interval: float = VERIFY_INTERVAL,
) -> Callable[[web.Application], AsyncIterator[None]]:
    """An aiohttp ``cleanup_ctx`` running the verification sweep while the app runs."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(_verify_forever(app[CTX].store, app[BLOBS], interval))
        yield
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return run


def add_routes(app: web.Application, blobs: BlobStore) -> None:
    app[BLOBS] = blobs
    app[_LOCKS] = {}
    app.router.add_get("/api/v1/cases/{case_no}/recordings", list_recordings)
    app.router.add_get(
        "/api/v1/cases/{case_no}/recordings/{sha256:[0-9a-f]{64}}.mp4", play_recording
    )
    app.cleanup_ctx.append(recording_verifier())
