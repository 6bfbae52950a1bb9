"""The box's live reception as the kiosk sees it: one state machine.

::

    idle --request_reception--> waiting(position) --session_started--> in_call(session,
      ^                            |  cancel / withdrawn                official)
      |                            v                                      | end / session_ended
      +---- after ended_seconds -- ended(reason) <------------------------+

``request_reception(case_no)`` sends ``request_reception`` for one of this box's cases (the
summary is the first ``summary_chars`` characters of its content); ``queued`` frames update the
position; ``session_started`` starts the call (``edge.live.call.BoxCall``, publishing the session's
``video_codec``) and its recording
(``edge.media.recorder.Recorder``, named after the case and session); ``session_ended`` (or
``cancel`` during the call, which sends ``end``) closes both and hands every recorded file to
the recording sink (``EdgeStore.add_recording``). At start-up, recordings a crash left behind
are recovered and handed over the same way.

A dropped signaling socket is reconnected within the server's rejoin grace: the server then
says ``welcome.resumed`` and sends the session (or queue place) again, and the call sends
again the offers it has no answer for. A welcome that resumes nothing while the box thought
it was waiting or in a call means the grace ran out: the call ends locally ("connection_lost").
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from contracts import signaling as sig
from contracts.cases import Category
from edge.live.call import BoxCall, CallStats
from edge.live.client import SignalingClient
from edge.live.config import LiveConfig
from edge.live.errors import LiveError, LiveUnavailable, UnknownCase, WrongState
from edge.live.recordings import RecordingSink, recording_name, recover_unfinished
from edge.media.config import MediaConfig
from edge.media.errors import RecordingError
from edge.media.recorder import RecordedFile, Recorder
from edge.store.db import EdgeStore
from runtime.rtc import install_fast_clock, install_low_latency

log = logging.getLogger(__name__)

Phase = Literal["idle", "waiting", "in_call", "ended"]
CallFactory = Callable[..., BoxCall]


@dataclass(frozen=True)
class LiveState:
    """A snapshot for ``GET /api/v1/live/state``."""

    state: Phase
    available: bool
    """the signaling socket is up: a request can be made"""
    case_no: str | None = None
    request_id: str | None = None
    position: int | None = None
    session_id: str | None = None
    official: str | None = None
    started_at: str | None = None
    ended_reason: str | None = None
    duration_s: float | None = None
    error: dict[str, str] | None = None
    call: CallStats | None = None
    recordings: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class LiveService:
    """Owns the signaling client, the call and its recording. ``run`` until cancelled."""

    def __init__(
        self,
        node: str,
        store: EdgeStore,
        recordings: RecordingSink,
        media: MediaConfig,
        recording_dir: Path,
        config: LiveConfig | None = None,
        *,
        call_factory: CallFactory = BoxCall,
    ) -> None:
        self.node = node
        self.store = store
        self.recordings = recordings
        self.media = media
        self.recording_dir = recording_dir
        self.config = config or LiveConfig()
        self.call_factory = call_factory
        self.client = SignalingClient(
            node,
            self._on_frame,
            on_state=self._on_link,
            reconnect_min=self.config.reconnect_min,
            reconnect_max=self.config.reconnect_max,
        )
        self.phase: Phase = "idle"
        self.case_no: str | None = None
        self.request_id: str | None = None
        self.position: int | None = None
        self.session: sig.SessionStarted | None = None
        self.official: str | None = None
        self.ended_reason: str | None = None
        self.duration_s: float | None = None
        self.error: LiveError | None = None
        self.call: BoxCall | None = None
        self.recorder: Recorder | None = None
        self.recorded: list[RecordedFile] = []
        self._changed = asyncio.Event()
        self._version = 0
        self._call_started = 0.0
        self._teardown: asyncio.Task[None] | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False

    # -- wiring -------------------------------------------------------------------------------

    def configure(self, signaling_url: str, signaling_token: str) -> None:
        """The hub's config command: where and with which token to reach signaling."""
        if self.config.enabled:
            self.client.configure(signaling_url, signaling_token)

    async def run(self) -> None:
        """Recover recordings a crash left, then keep the signaling link until cancelled; on
        the way out the call (if any) is ended and its recording handed over."""
        install_low_latency()  # the official's frames are shown as soon as they are complete
        install_fast_clock()
        try:
            await self._recover()
            await self.client.run()
        finally:
            await self.close()

    async def close(self) -> None:
        """End the call and its recording; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        await self._finish_call("shutdown")
        if self._teardown is not None:
            await asyncio.gather(self._teardown, return_exceptions=True)

    async def _recover(self) -> None:
        try:
            found = await recover_unfinished(self.recording_dir, self.recordings)
        except Exception:
            log.exception("%s: recovering unfinished recordings failed", self.node)
            return
        if found:
            log.info("%s: %d recording(s) recovered after a crash", self.node, len(found))

    # -- what the kiosk asks ------------------------------------------------------------------

    def state(self) -> LiveState:
        session = self.session
        return LiveState(
            state=self.phase,
            available=self.client.connected,
            case_no=self.case_no,
            request_id=self.request_id,
            position=self.position,
            session_id=session.session_id if session else None,
            official=self.official,
            started_at=session.started_at.isoformat() if session else None,
            ended_reason=self.ended_reason,
            duration_s=self.duration_s,
            error={"code": self.error.code, "message": str(self.error)} if self.error else None,
            call=self.call.stats() if self.call else None,
            recordings=len(self.recorded),
        )

    async def wait_change(self, version: int, seconds: float) -> int:
        """Wait up to ``seconds`` for a state change after ``version``; the current version."""
        if self._version == version:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), seconds)
        return self._version

    @property
    def version(self) -> int:
        return self._version

    async def request_reception(self, case_no: str) -> LiveState:
        """Ask for a reception about ``case_no`` (a case of this box)."""
        if self.phase in ("waiting", "in_call"):
            raise WrongState(f"cannot request a reception while {self.phase} (case {self.case_no})")
        if not self.client.connected:
            raise LiveUnavailable("the signaling server is not reachable; try again shortly")
        row = await self.store.run(
            lambda db: db.execute(
                "SELECT content, category FROM cases WHERE case_no = ?", [case_no]
            ).fetchone()
        )
        if row is None:
            raise UnknownCase(f"case {case_no!r} is not registered on this box")
        content, category = str(row[0]), Category(row[1])
        summary = " ".join(content.split())[: self.config.summary_chars] or case_no
        await self.client.send(
            sig.RequestReception(case_no=case_no, summary=summary, category=category)
        )
        self._set(
            "waiting",
            case_no=case_no,
            request_id=None,
            position=None,
            session=None,
            official=None,
            ended_reason=None,
            duration_s=None,
            error=None,
        )
        log.info("%s: requested a reception for case %s", self.node, case_no)
        return self.state()

    async def cancel(self) -> LiveState:
        """Withdraw the waiting request, or end the call."""
        if self.phase == "waiting":
            if self.request_id is not None:
                with contextlib.suppress(LiveError):
                    await self.client.send(sig.Cancel(request_id=self.request_id))
            self._set("idle", request_id=None, position=None, case_no=None, error=None)
        elif self.phase == "in_call" and self.session is not None:
            session_id = self.session.session_id
            with contextlib.suppress(LiveError):
                await self.client.send(sig.End(session_id=session_id, reason="completed"))
            await self._end_call("completed", time.monotonic() - self._call_started)
        else:
            raise WrongState(f"nothing to cancel while {self.phase}")
        return self.state()

    # -- what signaling says ------------------------------------------------------------------

    def _on_link(self, connected: bool) -> None:
        self._bump()

    async def _on_frame(self, frame: sig.Frame) -> None:
        match frame:
            case sig.Welcome():
                await self._on_welcome(frame)
            case sig.Queued():
                if self.phase == "waiting":
                    self._set("waiting", request_id=frame.request_id, position=frame.position)
            case sig.SessionStarted():
                await self._on_started(frame)
            case sig.Answer():
                if (
                    self.call is not None
                    and self.session is not None
                    and frame.session_id == self.session.session_id
                ):
                    await self.call.on_answer(frame)
            case sig.SessionEnded():
                if self.session is not None and frame.session_id == self.session.session_id:
                    await self._end_call(frame.reason, frame.duration_s)
            case sig.Error():
                self._on_error(frame)
            case _:
                log.debug("%s: ignoring %s", self.node, frame.type)

    async def _on_welcome(self, frame: sig.Welcome) -> None:
        if self.phase == "in_call" and self.session is not None:
            if frame.session_id != self.session.session_id:
                log.warning(
                    "%s: session %s is gone after a reconnect", self.node, self.session.session_id
                )
                await self._end_call("connection_lost", time.monotonic() - self._call_started)
            elif self.call is not None:
                await self.call.resend()
        elif self.phase == "waiting" and not frame.resumed:
            log.warning("%s: the waiting request was lost with the connection", self.node)
            self._set(
                "idle",
                request_id=None,
                position=None,
                error=LiveUnavailable("the connection was lost while waiting; ask again"),
            )

    def _on_error(self, frame: sig.Error) -> None:
        log.warning(
            "%s: signaling refused %s: %s (%s)",
            self.node,
            frame.frame_type,
            frame.message,
            frame.code,
        )
        if frame.frame_type == "request_reception" and self.phase == "waiting":
            error = LiveError(frame.message)
            error.code = frame.code
            self._set("idle", case_no=None, request_id=None, position=None, error=error)

    async def _on_started(self, frame: sig.SessionStarted) -> None:
        if frame.role != "box":
            return
        if self.session is not None and self.session.session_id == frame.session_id:
            return  # sent again after a rejoin; the welcome handled it
        if self.phase == "in_call":
            await self._end_call("replaced", time.monotonic() - self._call_started)
        official = next((p.sub for p in frame.peers if p.part == "official"), None)
        self._set(
            "in_call",
            case_no=frame.case_no,
            session=frame,
            official=official,
            position=None,
            error=None,
            ended_reason=None,
            duration_s=None,
        )
        self._call_started = time.monotonic()
        name = recording_name(frame.case_no, frame.session_id)
        recorder = Recorder(self.recording_dir, name.stem, self.media)
        call = self.call_factory(
            frame.session_id,
            official,
            self.media,
            self.client.send,
            recorder=recorder,
            answer_timeout=self.config.answer_timeout,
            video_codec=frame.video_codec,
        )
        self.recorder, self.call = recorder, call
        log.info(
            "%s: in session %s with %s (case %s), publishing %s",
            self.node,
            frame.session_id,
            official,
            frame.case_no,
            frame.video_codec,
        )
        try:
            await recorder.start()
            await call.start()
        except Exception as exc:
            log.exception("%s: starting the call of session %s failed", self.node, frame.session_id)
            with contextlib.suppress(LiveError):
                await self.client.send(
                    sig.End(session_id=frame.session_id, reason="box_media_failed")
                )
            await self._end_call("box_media_failed", 0.0)
            self.error = LiveError(f"the call could not start: {exc}")
        self._bump()

    async def _end_call(self, reason: str, duration_s: float) -> None:
        self._set("ended", ended_reason=reason, duration_s=round(duration_s, 1), request_id=None)
        await self._finish_call(reason)
        if self._idle_timer is not None:
            self._idle_timer.cancel()
        if not self._closed:
            loop = asyncio.get_running_loop()
            self._idle_timer = loop.call_later(self.config.ended_seconds, self._back_to_idle)

    def _back_to_idle(self) -> None:
        if self.phase == "ended":
            self._set("idle", case_no=None, session=None, official=None)

    async def _finish_call(self, reason: str) -> None:
        """Close the call and the recording (in the background: the state moves on at once)."""
        call, recorder, session = self.call, self.recorder, self.session
        self.call, self.recorder = None, None
        if call is None and recorder is None:
            return
        previous = self._teardown

        async def teardown() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            if call is not None:
                await call.close()
            if recorder is None or session is None:
                return
            try:
                files = await recorder.close()
            except RecordingError as exc:
                log.error("%s: recording of session %s: %s", self.node, session.session_id, exc)
                files = list(recorder.files)
            for rec in files:
                try:
                    await self.recordings.add_recording(
                        session.case_no, session.session_id, rec, started_at=session.started_at
                    )
                except Exception:
                    log.exception("%s: storing recording %s failed", self.node, rec.path.name)
                    continue
                self.recorded.append(rec)
            log.info(
                "%s: session %s ended (%s); %d recording file(s)",
                self.node,
                session.session_id,
                reason,
                len(files),
            )
            self._bump()

        self._teardown = asyncio.create_task(teardown(), name=f"{self.node} call teardown")
        if self._closed:
            await asyncio.gather(self._teardown, return_exceptions=True)

    async def wait_teardown(self) -> None:
        """Until the last call's media and recording are closed and handed over."""
        if self._teardown is not None:
            await asyncio.gather(self._teardown, return_exceptions=True)

    # -- state ------------------------------------------------------------------------------------

    def _set(self, phase: Phase, **fields: Any) -> None:
        self.phase = phase
        for key, value in fields.items():
            setattr(self, key, value)
        self._bump()

    def _bump(self) -> None:
        """Wake everyone waiting in ``wait_change``."""
        self._version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()
