"""The case workflow's states, its actions, and who may take each action from where.

登记 registered → 转送/交办 routed → 受理 accepted | 不予受理 not accepted | 并案 merged →
办理中 handling (→ 延期 extended) → 答复 replied → 评价 evaluated → 归档 archived, with 复查 and
复核 reviews after a reply. 督办 (supervision) is an overlay on an open case, not a state.

The table ``TRANSITIONS`` is the whole state machine: the engine refuses anything not in it,
and the console offers exactly what it allows for the viewer's role.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from contracts.access import Role


class State(StrEnum):
    REGISTERED = "registered"
    ROUTED = "routed"
    ACCEPTED = "accepted"
    NOT_ACCEPTED = "not_accepted"
    MERGED = "merged"
    HANDLING = "handling"
    EXTENDED = "extended"
    REPLIED = "replied"
    EVALUATED = "evaluated"
    REVIEW = "review"
    REVIEWED = "reviewed"
    RECHECK = "recheck"
    RECHECKED = "rechecked"
    ARCHIVED = "archived"

    @property
    def label_zh(self) -> str:
        return _STATE_ZH[self]

    @property
    def label_en(self) -> str:
        return self.value.replace("_", " ")

    @property
    def closed(self) -> bool:
        """No further handling is owed (its deadlines stop; it leaves the 督办 list)."""
        return self in CLOSED


_STATE_ZH = {
    State.REGISTERED: "登记",
    State.ROUTED: "转送/交办",
    State.ACCEPTED: "受理",
    State.NOT_ACCEPTED: "不予受理",
    State.MERGED: "并案",
    State.HANDLING: "办理中",
    State.EXTENDED: "延期办理",
    State.REPLIED: "答复",
    State.EVALUATED: "评价",
    State.REVIEW: "复查中",
    State.REVIEWED: "复查答复",
    State.RECHECK: "复核中",
    State.RECHECKED: "复核答复",
    State.ARCHIVED: "归档",
}
CLOSED = frozenset({State.NOT_ACCEPTED, State.MERGED, State.ARCHIVED})


class Action(StrEnum):
    ROUTE = "route"
    ACCEPT = "accept"
    NOT_ACCEPT = "not_accept"
    MERGE = "merge"
    START = "start"
    EXTEND = "extend"
    REPLY = "reply"
    RETURN = "return"
    EVALUATE = "evaluate"
    REQUEST_REVIEW = "request_review"
    ANSWER_REVIEW = "answer_review"
    REQUEST_RECHECK = "request_recheck"
    ANSWER_RECHECK = "answer_recheck"
    ARCHIVE = "archive"
    SUPERVISE = "supervise"

    @property
    def label_zh(self) -> str:
        return _ACTION_ZH[self]


_ACTION_ZH = {
    Action.ROUTE: "转送/交办",
    Action.ACCEPT: "受理",
    Action.NOT_ACCEPT: "不予受理",
    Action.MERGE: "并案",
    Action.START: "开始办理",
    Action.EXTEND: "延期",
    Action.REPLY: "答复",
    Action.RETURN: "发回重办",
    Action.EVALUATE: "评价",
    Action.REQUEST_REVIEW: "申请复查",
    Action.ANSWER_REVIEW: "复查答复",
    Action.REQUEST_RECHECK: "申请复核",
    Action.ANSWER_RECHECK: "复核答复",
    Action.ARCHIVE: "归档",
    Action.SUPERVISE: "督办",
}

PETITIONER = "petitioner"
"""The actor name of a petitioner's own step (a rating on the public query page)."""


@dataclass(frozen=True, slots=True)
class Transition:
    action: Action
    sources: frozenset[State]
    target: State | None
    """``None``: an overlay (督办) that leaves the state as it is."""
    roles: frozenset[Role]
    """Roles allowed to take it; an empty set means only the petitioner (public page)."""


def _t(action: Action, sources: set[State], target: State | None, *roles: Role) -> Transition:
    return Transition(action, frozenset(sources), target, frozenset(roles))


OFFICE, UNIT, OFFICIAL = Role.PETITION_OFFICE, Role.UNIT, Role.OFFICIAL
OPEN = frozenset(State) - CLOSED
TRANSITIONS: dict[Action, Transition] = {
    t.action: t
    for t in (
        _t(Action.ROUTE, {State.REGISTERED}, State.ROUTED, OFFICE),
        _t(Action.ACCEPT, {State.REGISTERED, State.ROUTED}, State.ACCEPTED, OFFICE, UNIT),
        _t(Action.NOT_ACCEPT, {State.REGISTERED, State.ROUTED}, State.NOT_ACCEPTED, OFFICE, UNIT),
        _t(
            Action.MERGE,
            {State.REGISTERED, State.ROUTED, State.ACCEPTED, State.HANDLING},
            State.MERGED,
            OFFICE,
        ),
        _t(Action.START, {State.ACCEPTED}, State.HANDLING, UNIT, OFFICE),
        _t(Action.EXTEND, {State.HANDLING}, State.EXTENDED, OFFICE, OFFICIAL),
        _t(Action.REPLY, {State.HANDLING, State.EXTENDED}, State.REPLIED, UNIT, OFFICE),
        _t(Action.RETURN, {State.REPLIED}, State.HANDLING, OFFICE, OFFICIAL),
        _t(Action.EVALUATE, {State.REPLIED}, State.EVALUATED),
        _t(Action.REQUEST_REVIEW, {State.REPLIED, State.EVALUATED}, State.REVIEW, OFFICE),
        _t(Action.ANSWER_REVIEW, {State.REVIEW}, State.REVIEWED, OFFICE, OFFICIAL),
        _t(Action.REQUEST_RECHECK, {State.REVIEWED}, State.RECHECK, OFFICE),
        _t(Action.ANSWER_RECHECK, {State.RECHECK}, State.RECHECKED, OFFICE, OFFICIAL),
        _t(
            Action.ARCHIVE,
            {State.REPLIED, State.EVALUATED, State.REVIEWED, State.RECHECKED},
            State.ARCHIVED,
            OFFICE,
        ),
        _t(Action.SUPERVISE, set(OPEN), None, OFFICIAL, Role.MONITOR, OFFICE),
    )
}


def allowed(state: State, role: Role) -> list[Action]:
    """The actions a holder of ``role`` may take on a case in ``state``, in table order."""
    return [t.action for t in TRANSITIONS.values() if state in t.sources and role in t.roles]
