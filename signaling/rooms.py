"""The signaling state machine: connections, the waiting queue, sessions, rejoin, monitors.

Everything here is synchronous and runs on the event loop: a frame is handled from start to
finish without an await, so no other frame sees half a change. Frames go out through each
``Connection``'s own queue. Timers (the rejoin grace) are loop ``call_later`` handles,
cancelled by ``close``.

Rejoin: state belongs to a subject (the token's ``sub``), not to a socket. When a socket of a
subject that is in a session, or has a waiting request, drops, the subject has
``grace`` seconds to connect again (``welcome.resumed`` is then true, and it is sent its
session or queue place again); after that its session ends for everyone (reason
``peer_lost``) or its request is withdrawn (``box_lost``). A new socket of a subject that
still has one replaces the old (closed with ``CLOSE_REPLACED``). A monitor's views end with
its socket (each one reaches the sink as a ``monitor_view``); it watches again after
rejoining.

Video codec: ``accept`` fixes the codec the box publishes (``choose_video_codec`` of the
official's ``video_codecs``) for the whole session; every ``session_started`` carries it.

Session events go to the configured sink and to ``events`` (a ``signaling.sink.RelayFeed``),
which stores each in its outbox before anything else happens and delivers it to the relay
until the relay acknowledges it (``event_ack``).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time

from contracts import signaling as sig
from contracts.access import Role
from contracts.divisions import Tier, parse_division
from contracts.signaling import (
    CLOSE_GOING_AWAY,
    CLOSE_REPLACED,
    CLOSE_SUBJECT_IN_USE,
)
from runtime.logs import QuietLogger
from signaling.connection import Connection
from signaling.errors import Refused
from signaling.outbox import EventOutbox
from signaling.queue import Request, WaitingQueue
from signaling.sessions import Participant, Session, Sessions, View
from signaling.sink import EventSink, RelayFeed

log = logging.getLogger(__name__)
quiet = QuietLogger(log)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Rooms:
    def __init__(
        self, sink: EventSink, grace: float = 30.0, events: RelayFeed | None = None
    ) -> None:
        self.sink = sink
        self.events = events or RelayFeed(EventOutbox(None))
        """Every event also goes to the relay (the hub), kept until the relay acknowledges it
        (default: an outbox in memory, lost with the process)."""
        self.grace = grace
        self.queue = WaitingQueue()
        self.sessions = Sessions()
        self.conns: dict[str, Connection] = {}
        """The current socket of each subject (the relay's is ``self.relay``)."""
        self.relay: Connection | None = None
        self._lost: dict[str, asyncio.TimerHandle] = {}
        """Subjects whose socket dropped while they had a session or request: their grace."""
        self.closed = False

    # -- joining and leaving ------------------------------------------------------------------

    def join(self, conn: Connection) -> None:
        """A socket passed its token check: welcome it and send it its state."""
        if self.closed:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")
            return
        if conn.relay:
            self._join_relay(conn)
            return
        sub = conn.sub
        old = self.conns.get(sub)
        held = self._held_role(sub)
        if held is not None and held is not conn.claims.role:
            # a box's node id and a user's name may coincide: never let one resume the other
            log.warning("%s: refused: subject is held with role %s", conn.who, held.value)
            conn.error("subject_in_use", f"subject {sub!r} is in use with role {held.value!r}")
            conn.close(CLOSE_SUBJECT_IN_USE, "subject in use with another role")
            return
        if old is not None:
            log.info("%s: replaces %s", conn.who, old.who)
            old.error("replaced", "a newer connection of the same subject took over")
            old.close(CLOSE_REPLACED, "replaced by a newer connection")
        self.conns[sub] = conn
        timer = self._lost.pop(sub, None)
        if timer is not None:
            timer.cancel()
        session = self.sessions.of(sub)
        request = self.queue.of_box(sub)
        claims = conn.claims
        conn.send(
            sig.Welcome(
                you=sig.Identity(sub=sub, role=claims.role, jur=claims.jur),
                resumed=session is not None or request is not None,
                session_id=session.session_id if session else None,
            )
        )
        log.info(
            "%s: joined (jurisdiction %s, %s)",
            conn.who,
            claims.jur,
            "back within the grace" if timer else "new",
        )
        if session is not None:
            conn.send(self._started(session, sub))
        if request is not None:
            request.sent_position = None
            self._tell_positions()
        if claims.role in sig.QUEUE_ROLES:
            self._send_queue(conn)
        if claims.role in sig.WATCH_ROLES:
            self._send_live(conn)

    def _held_role(self, sub: str) -> Role | None:
        """The role in which ``sub`` holds a socket, a session or a waiting request."""
        if (old := self.conns.get(sub)) is not None:
            return old.claims.role
        if (session := self.sessions.of(sub)) is not None:
            p = session.participant(sub)
            return p.role if p else None
        return Role.BOX if self.queue.of_box(sub) is not None else None

    def _join_relay(self, conn: Connection) -> None:
        if self.relay is not None:
            log.info("%s: replaces relay %s", conn.who, self.relay.who)
            self.relay.error("replaced", "a newer relay connection took over")
            self.relay.close(CLOSE_REPLACED, "replaced by a newer connection")
        self.relay = conn
        claims = conn.claims
        conn.send(sig.Welcome(you=sig.Identity(sub=conn.sub, role=claims.role, jur=claims.jur)))
        log.info("%s: relay joined; %d live sessions", conn.who, len(self.sessions))
        self.events.attach(conn)
        for session in self.sessions.all():
            conn.send(self._started(session, None))

    def drop(self, conn: Connection) -> None:
        """A socket closed (either side): start the grace of what its subject holds."""
        if conn.relay:
            self.events.detach(conn)
            if self.relay is conn:
                self.relay = None
                log.warning("%s: relay gone; %d live sessions", conn.who, len(self.sessions))
            return
        sub = conn.sub
        if self.conns.get(sub) is not conn:
            return  # replaced: the newer socket holds the state
        del self.conns[sub]
        for session in self.sessions.watched_by(sub):
            self._stop_view(session, sub)
        if self.closed:
            return
        if self.sessions.of(sub) is not None or self.queue.of_box(sub) is not None:
            loop = asyncio.get_running_loop()
            self._lost[sub] = loop.call_later(self.grace, self._expire, sub)
            log.info("%s: dropped; %.1f s to rejoin", conn.who, self.grace)

    def rejoining(self, sub: str) -> bool:
        """Whether ``sub``'s socket dropped and its grace is running."""
        return sub in self._lost

    def _expire(self, sub: str) -> None:
        self._lost.pop(sub, None)
        if sub in self.conns or self.closed:
            return
        session = self.sessions.of(sub)
        if session is not None:
            log.info("%s: did not rejoin session %s in %.1f s", sub, session.session_id, self.grace)
            self._end(session, "peer_lost", None)
        request = self.queue.of_box(sub)
        if request is not None:
            log.info("%s: did not rejoin in %.1f s; request withdrawn", sub, self.grace)
            self._cancel(request, "box_lost")

    def close(self) -> None:
        """Shutdown: end sessions and requests (events reach the sink), close every socket.
        Safe to call twice."""
        if self.closed:
            return
        self.closed = True
        for timer in self._lost.values():
            timer.cancel()
        self._lost.clear()
        for session in self.sessions.all():
            self._end(session, "shutdown", None)
        for request in self.queue.all():
            self._cancel(request, "shutdown")
        for conn in [*self.conns.values(), *([self.relay] if self.relay else [])]:
            conn.close(CLOSE_GOING_AWAY, "server shutting down")

    # -- frames ---------------------------------------------------------------------------------

    def handle(self, conn: Connection, frame: sig.Frame) -> None:
        """Act on one frame; a refusal becomes an ``error`` frame to the sender."""
        try:
            self._check_sender(conn, frame)
            match frame:
                case sig.RequestReception():
                    self._request(conn, frame)
                case sig.Cancel():
                    self._withdraw(conn, frame)
                case sig.Accept():
                    self._accept(conn, frame)
                case sig.Offer() | sig.Answer() | sig.Ice() | sig.MediaFailed():
                    self._media(conn, frame)
                case sig.Watch():
                    self._watch(conn, frame)
                case sig.Leave():
                    self._leave(conn, frame)
                case sig.End():
                    self._end_by(conn, frame)
                case sig.EventAck():
                    self.events.ack(conn, frame.seq)
                case sig.Hello():
                    raise Refused("unexpected", "already authenticated: hello only comes first")
        except Refused as exc:
            quiet.warning(exc.code, "%s: refused %s: %s", conn.who, frame.type, exc)
            conn.error(exc.code, str(exc), frame.type)

    def _check_sender(self, conn: Connection, frame: sig.Frame) -> None:
        allowed = sig.SENDERS.get(frame.type)
        if allowed is None:
            raise Refused("not_allowed", f"frame type {frame.type!r} is sent by the server only")
        sender = sig.RELAY if conn.relay else conn.claims.role.value
        if "any" not in allowed and sender not in allowed:
            raise Refused(
                "forbidden",
                f"role {sender!r} may not send {frame.type!r} "
                f"(allowed: {', '.join(sorted(allowed))})",
            )
        scope = conn.claims.sid
        session_id = getattr(frame, "session_id", None)
        if scope is not None and session_id is not None and session_id != scope:
            raise Refused(
                "out_of_scope", f"token is scoped to session {scope!r}, not {session_id!r}"
            )

    def _request(self, conn: Connection, frame: sig.RequestReception) -> None:
        township = conn.claims.jur
        if parse_division(township).tier is not Tier.TOWNSHIP:
            raise Refused(
                "forbidden", f"a box token's jurisdiction must be a township, got {township!r}"
            )
        if not frame.case_no.startswith(township + "-"):
            raise Refused(
                "out_of_jurisdiction",
                f"case {frame.case_no!r} is not a case of this box's township {township}",
            )
        if (waiting := self.queue.of_box(conn.sub)) is not None:
            raise Refused(
                "already_waiting", f"this box already waits with request {waiting.request_id!r}"
            )
        if (session := self.sessions.of(conn.sub)) is not None:
            raise Refused("busy", f"this box is in session {session.session_id!r}")
        request = self.queue.add(
            Request(
                node=conn.sub,
                township=township,
                case_no=frame.case_no,
                summary=frame.summary,
                category=frame.category,
            )
        )
        log.info("%s: requests reception for case %s", conn.who, frame.case_no)
        self._emit(
            sig.Requested(
                at=request.since,
                case_no=request.case_no,
                node=request.node,
                township=request.township,
                request_id=request.request_id,
                category=request.category,
            )
        )
        self._queue_changed()

    def _withdraw(self, conn: Connection, frame: sig.Cancel) -> None:
        request = self.queue.get(frame.request_id)
        if request is None or request.node != conn.sub:
            raise Refused(
                "unknown_request", f"this box has no waiting request {frame.request_id!r}"
            )
        self._cancel(request, "withdrawn")

    def _cancel(self, request: Request, reason: str) -> None:
        self.queue.remove(request.request_id)
        self._emit(
            sig.Cancelled(
                at=_now(),
                case_no=request.case_no,
                node=request.node,
                township=request.township,
                request_id=request.request_id,
                reason=reason,
                waited_s=request.waited_s(),
            )
        )
        self._queue_changed()

    def _accept(self, conn: Connection, frame: sig.Accept) -> None:
        request = self.queue.get(frame.request_id)
        if request is None:
            raise Refused(
                "unknown_request",
                f"request {frame.request_id!r} is not waiting (taken, withdrawn or unknown)",
            )
        claims = conn.claims
        if not claims.covers(request.township):
            raise Refused(
                "out_of_jurisdiction",
                f"township {request.township} is outside jurisdiction {claims.jur}",
            )
        if (busy := self.sessions.of(conn.sub)) is not None:
            raise Refused("busy", f"you are in session {busy.session_id!r}; end it first")
        video_codec = sig.choose_video_codec(frame.video_codecs)  # validated: never raises
        self.queue.remove(request.request_id)
        session = self.sessions.add(
            Session(
                request_id=request.request_id,
                case_no=request.case_no,
                node=request.node,
                township=request.township,
                box=Participant(request.node, Role.BOX, "box"),
                official=Participant(conn.sub, claims.role, "official"),
                video_codec=video_codec,
            )
        )
        common = {"case_no": request.case_no, "node": request.node, "township": request.township}
        self._emit(
            sig.Accepted(
                at=session.started_at,
                request_id=request.request_id,
                official=conn.sub,
                waited_s=request.waited_s(),
                **common,
            )
        )
        self._emit(
            sig.Started(
                at=session.started_at,
                request_id=request.request_id,
                session_id=session.session_id,
                official=conn.sub,
                **common,
            )
        )
        log.info(
            "%s: accepted %s; session %s with %s, video %s",
            conn.who,
            request.request_id,
            session.session_id,
            request.node,
            video_codec,
        )
        for p in session.participants:
            if (c := self.conns.get(p.sub)) is not None:
                c.send(self._started(session, p.sub))
        if self.relay is not None:
            self.relay.send(self._started(session, None))
        self._queue_changed()
        self._live_changed()

    def _started(self, session: Session, sub: str | None) -> sig.SessionStarted:
        """``session_started`` for ``sub`` (a participant or watcher; ``None``: the relay)."""
        p = session.participant(sub) if sub else None
        part: sig.Part = p.part if p else ("monitor" if sub else "relay")
        return sig.SessionStarted(
            session_id=session.session_id,
            request_id=session.request_id,
            case_no=session.case_no,
            township=session.township,
            role=part,
            peers=session.peers(),
            started_at=session.started_at,
            video_codec=session.video_codec,
        )

    # -- media ----------------------------------------------------------------------------------

    def _media(
        self, conn: Connection, frame: sig.Offer | sig.Answer | sig.Ice | sig.MediaFailed
    ) -> None:
        session = self._session(frame.session_id)
        if conn.relay:
            if frame.peer is None:
                raise Refused("invalid_field", f"{frame.type} from the relay must name its peer")
            if session.participant(frame.peer) is None and frame.peer not in session.views:
                raise Refused(
                    "unknown_peer", f"{frame.peer!r} is not in session {session.session_id!r}"
                )
            target = self.conns.get(frame.peer)
            if target is None:
                log.info("%s: %s for absent %s dropped", conn.who, frame.type, frame.peer)
                return
            target.send(frame)
            return
        if session.participant(conn.sub) is None:
            if conn.sub not in session.views:
                raise Refused(
                    "not_in_session",
                    f"you neither take part in nor watch session {session.session_id!r}",
                )
            if frame.direction != "subscribe":
                raise Refused("forbidden", "a monitor only watches: direction must be subscribe")
        if self.relay is None:
            raise Refused("relay_unavailable", "the media relay is not connected; try again")
        self.relay.send(frame.model_copy(update={"peer": conn.sub}))

    def _session(self, session_id: str) -> Session:
        session = self.sessions.get(session_id)
        if session is None:
            raise Refused("unknown_session", f"no live session {session_id!r}")
        return session

    # -- monitors -------------------------------------------------------------------------------

    def _watch(self, conn: Connection, frame: sig.Watch) -> None:
        session = self._session(frame.session_id)
        claims = conn.claims
        if not claims.covers(session.township):
            raise Refused(
                "out_of_jurisdiction",
                f"session {session.session_id!r} (township {session.township}) is outside "
                f"jurisdiction {claims.jur}",
            )
        if conn.sub not in session.views:
            session.views[conn.sub] = View(sub=conn.sub, jur=claims.jur)
            log.info("%s: watches session %s unseen", conn.who, session.session_id)
        conn.send(self._started(session, conn.sub))  # to the monitor alone

    def _leave(self, conn: Connection, frame: sig.Leave) -> None:
        session = self._session(frame.session_id)
        if session.participant(conn.sub) is not None:
            self._end(session, "left", conn.sub)
        elif conn.sub in session.views:
            self._stop_view(session, conn.sub)
            conn.send(
                sig.SessionEnded(
                    session_id=session.session_id,
                    reason="stopped_watching",
                    by=conn.sub,
                    duration_s=session.duration_s(),
                )
            )
        else:
            raise Refused("not_in_session", f"you are not in session {session.session_id!r}")

    def _stop_view(self, session: Session, sub: str, at: dt.datetime | None = None) -> None:
        view = session.views.pop(sub, None)
        if view is None:
            return
        self._emit(
            sig.MonitorView(
                at=at or _now(),
                case_no=session.case_no,
                node=session.node,
                township=session.township,
                session_id=session.session_id,
                monitor=sub,
                monitor_jur=view.jur,
                from_at=view.since,
                duration_s=max(0.0, time.monotonic() - view.since_mono),
            )
        )
        if self.relay is not None:
            self.relay.send(sig.PeerLeft(session_id=session.session_id, peer=sub))

    # -- ending ---------------------------------------------------------------------------------

    def _end_by(self, conn: Connection, frame: sig.End) -> None:
        session = self._session(frame.session_id)
        if not conn.relay and session.participant(conn.sub) is None:
            raise Refused("not_in_session", f"you are not in session {session.session_id!r}")
        self._end(session, frame.reason, conn.sub)

    def _end(self, session: Session, reason: str, by: str | None) -> None:
        if self.sessions.remove(session.session_id) is None:
            return
        at = _now()
        ended = sig.SessionEnded(
            session_id=session.session_id, reason=reason, by=by, duration_s=session.duration_s()
        )
        for sub in list(session.views):
            self._stop_view(session, sub, at)
            if (c := self.conns.get(sub)) is not None:
                c.send(ended)
        for p in session.participants:
            if (c := self.conns.get(p.sub)) is not None:
                c.send(ended)
            elif p.sub in self._lost and self.queue.of_box(p.sub) is None:
                self._lost.pop(p.sub).cancel()  # nothing left to rejoin
        if self.relay is not None:
            self.relay.send(ended)
        self._emit(
            sig.Ended(
                at=at,
                case_no=session.case_no,
                node=session.node,
                township=session.township,
                session_id=session.session_id,
                official=session.official.sub,
                reason=reason,
                by=by,
                started_at=session.started_at,
                duration_s=ended.duration_s,
            )
        )
        log.info(
            "session %s ended after %.1f s: %s (by %s)",
            session.session_id,
            ended.duration_s,
            reason,
            by or "server",
        )
        self._live_changed()

    def _emit(self, event: sig.LiveEvent) -> None:
        self.sink.emit(event)
        self.events.emit(event)

    # -- snapshots ------------------------------------------------------------------------------

    def _queue_changed(self) -> None:
        for conn in self.conns.values():
            if conn.claims.role in sig.QUEUE_ROLES:
                self._send_queue(conn)
        self._tell_positions()

    def _send_queue(self, conn: Connection) -> None:
        self._snapshot(conn, sig.Queue(entries=self.queue.visible_to(conn.claims)))

    def _tell_positions(self) -> None:
        for request in self.queue.all():
            position = self.queue.position(request)
            conn = self.conns.get(request.node)
            if conn is not None and position != request.sent_position:
                request.sent_position = position
                conn.send(sig.Queued(request_id=request.request_id, position=position))

    def _live_changed(self) -> None:
        for conn in self.conns.values():
            if conn.claims.role in sig.WATCH_ROLES:
                self._send_live(conn)

    def _send_live(self, conn: Connection) -> None:
        sessions = [s.live() for s in self.sessions.all() if conn.claims.covers(s.township)]
        self._snapshot(conn, sig.Live(sessions=sessions))

    @staticmethod
    def _snapshot(conn: Connection, frame: sig.Queue | sig.Live) -> None:
        text = frame.dump()
        if text != conn.last_snapshot:
            conn.last_snapshot = text
            conn.send_text(text)

    def stats(self) -> dict[str, int]:
        return {
            "connections": len(self.conns) + (self.relay is not None),
            "waiting": len(self.queue),
            "sessions": len(self.sessions),
            "relay": int(self.relay is not None),
            "events_waiting": self.events.waiting,
            "events_unacked": self.events.unacked,
            "events_dropped": self.events.dropped,
        }
