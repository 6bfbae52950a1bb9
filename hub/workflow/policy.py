"""Deadline policies: which state starts which clock, for how many days, and what stops it.

Policies are configuration, not code, because they differ by law and by place. The shipped
``policies.toml`` holds the 信访工作条例 track, the simple track (简易办理) and Harbin's
"三一五"; a hub may load its own file instead (:func:`load_policies`).
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from hub.errors import HubError
from hub.workflow.calendar import DayKind
from hub.workflow.states import Action, State
from runtime.config import Section, load_config
from runtime.errors import ConfigError

_SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
SHIPPED = "policies.toml"


class PolicyError(HubError):
    """Base class for deadline policy errors."""


class PolicyFileError(PolicyError):
    """A policy file is missing, not TOML, or invalid; ``problems`` lists each."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


class UnknownRule(PolicyError):
    """A track or deadline kind that the loaded policies do not define."""


def _slug(value: str) -> str:
    if not _SLUG.match(value):
        raise ValueError("must be lowercase letters, digits and _, starting with a letter")
    return value


def _reminders(value: list[int]) -> list[int]:
    bad = [n for n in value if n <= 0]
    if bad:
        raise ValueError(f"reminders are days before the due date and must be positive (got {bad})")
    if len(set(value)) != len(value):
        raise ValueError(f"reminders must not repeat (got {value})")
    return sorted(value, reverse=True)


Slug = Annotated[str, AfterValidator(_slug)]
Reminders = Annotated[list[int], AfterValidator(_reminders)]


class DeadlineRule(Section):
    kind: Slug = Field(description='slug naming the deadline within its track, e.g. "route"')
    label_zh: str = Field(min_length=1, description="name shown to officials, e.g. 转送交办期限")
    label_en: str = Field(min_length=1, description="English name for logs and exports")
    starts_on: list[State] = Field(
        min_length=1,
        description="entering any of these states starts the clock (the first time only)",
    )
    ends_on: list[State] = Field(
        min_length=1,
        description="entering any of these states stops the clock (met if on or before due)",
    )
    days: int = Field(ge=0, description="length of the period; the start day is not counted")
    day_kind: DayKind = Field(description='"calendar" or "working" days')
    yellow_days: int | None = Field(
        default=None,
        ge=0,
        description="days left (in day_kind) at which the light turns yellow; unset: the track's",
    )
    reminders: Reminders | None = Field(
        default=None,
        description="days before the due date (in day_kind) to remind; unset: the track's",
    )

    @model_validator(mode="after")
    def _start_stop(self) -> DeadlineRule:
        both = sorted(set(self.starts_on) & set(self.ends_on))
        if both:
            raise ValueError(
                f"deadline {self.kind!r}: states in both starts_on and ends_on "
                f"(got {[s.value for s in both]})"
            )
        return self


class WindowRule(Section):
    kind: Slug = Field(description='slug naming the window within its track, e.g. "review_request"')
    label_zh: str = Field(min_length=1, description="name shown to officials, e.g. 复查申请期")
    label_en: str = Field(min_length=1, description="English name for logs and exports")
    after: State = Field(description="entering this state opens the window")
    days: int = Field(ge=1, description="length of the window; the opening day is not counted")
    day_kind: DayKind = Field(description='"calendar" or "working" days')
    allows: Action = Field(description="the action allowed only while the window is open")


class ExtensionRule(Section):
    deadline: str = Field(description="kind of the track's deadline that may be extended")
    max_days: int = Field(ge=1, description="most days one extension adds, in the deadline's kind")
    max_count: int = Field(
        default=1, ge=1, description="how many times the deadline may be extended"
    )
    requires_reason: bool = Field(default=True, description="an extension must state its reason")


class Track(Section):
    id: Slug = Field(description="slug of the track; equals its key under [tracks]")
    name_zh: str = Field(min_length=1, description="name shown to officials, e.g. 简易办理")
    name_en: str = Field(min_length=1, description="English name for logs and exports")
    yellow_days: int = Field(
        default=3, ge=0, description="days left at which a deadline's light turns yellow"
    )
    reminders: Reminders = Field(
        default_factory=lambda: [15, 3], description="days before a due date to send reminders"
    )
    deadlines: list[DeadlineRule] = Field(min_length=1, description="the track's deadlines")
    windows: list[WindowRule] = Field(
        default_factory=list, description="periods within which a petitioner's request is allowed"
    )
    extension: ExtensionRule | None = Field(
        default=None, description="how one deadline may be extended; unset: no extension"
    )

    @field_validator("deadlines")
    @classmethod
    def _unique_deadlines(cls, value: list[DeadlineRule]) -> list[DeadlineRule]:
        _check_unique([d.kind for d in value])
        return value

    @field_validator("windows")
    @classmethod
    def _unique_windows(cls, value: list[WindowRule], info: ValidationInfo) -> list[WindowRule]:
        deadlines = [d.kind for d in info.data.get("deadlines", [])]
        _check_unique(deadlines + [w.kind for w in value], first=len(deadlines))
        return value

    @field_validator("extension")
    @classmethod
    def _extends_a_deadline(
        cls, value: ExtensionRule | None, info: ValidationInfo
    ) -> ExtensionRule | None:
        if value is None or "deadlines" not in info.data:
            return value
        kinds = [d.kind for d in info.data["deadlines"]]
        if value.deadline not in kinds:
            raise ValueError(
                f"deadline {value.deadline!r} is not a deadline of this track (has {kinds})"
            )
        return value

    def deadline(self, kind: str) -> DeadlineRule:
        """The deadline named ``kind``; ``KeyError`` if the track has none."""
        for d in self.deadlines:
            if d.kind == kind:
                return d
        raise KeyError(kind)

    def yellow_days_for(self, rule: DeadlineRule) -> int:
        return self.yellow_days if rule.yellow_days is None else rule.yellow_days

    def reminders_for(self, rule: DeadlineRule) -> list[int]:
        """Days before the due date to remind, largest first."""
        return self.reminders if rule.reminders is None else rule.reminders


def _check_unique(kinds: list[str], first: int = 0) -> None:
    """Raise if a kind repeats; only repeats at index ``first`` or later are reported."""
    seen: set[str] = set()
    for i, kind in enumerate(kinds):
        if kind in seen and i >= first:
            raise ValueError(f"kind {kind!r} appears more than once in the track")
        seen.add(kind)


class Policies(Section):
    tracks: dict[str, Track] = Field(min_length=1, description="deadline tracks by id")
    default_track: str = Field(description="id of the track a new case follows")

    @model_validator(mode="before")
    @classmethod
    def _ids_from_keys(cls, data: object) -> object:
        """A track table may leave out ``id``: it is its key under ``[tracks]``."""
        if isinstance(data, dict) and isinstance(data.get("tracks"), dict):
            tracks = {
                key: {"id": key, **value} if isinstance(value, dict) else value
                for key, value in data["tracks"].items()
            }
            data = {**data, "tracks": tracks}
        return data

    @field_validator("tracks")
    @classmethod
    def _ids_match(cls, value: dict[str, Track]) -> dict[str, Track]:
        for key, track in value.items():
            if track.id != key:
                raise ValueError(f"track [tracks.{key}] has id {track.id!r}; they must be equal")
        return value

    @field_validator("default_track")
    @classmethod
    def _default_exists(cls, value: str, info: ValidationInfo) -> str:
        tracks = info.data.get("tracks")
        if tracks is not None and value not in tracks:
            raise ValueError(f"no such track (tracks: {sorted(tracks)})")
        return value

    def track(self, track_id: str | None = None) -> Track:
        """The track ``track_id`` (the default track when ``None``)."""
        key = self.default_track if track_id is None else track_id
        try:
            return self.tracks[key]
        except KeyError:
            raise UnknownRule(f"no track {key!r} (tracks: {sorted(self.tracks)})") from None


def load_policies(path: Path | None = None) -> Policies:
    """Read the policies at ``path``, or the shipped ``policies.toml`` when ``None``.

    Raises ``PolicyFileError``: ``<file>: <field path>: <message> (got <value>)``, one
    ``; ``-separated part per problem.
    """
    try:
        if path is not None:
            return load_config(path, Policies)
        with resources.as_file(resources.files("hub.workflow") / SHIPPED) as shipped:
            return load_config(shipped, Policies)
    except ConfigError as exc:
        raise PolicyFileError(exc.path, exc.problems) from None


def rule(policies: Policies, track_id: str, kind: str) -> DeadlineRule:
    """The deadline ``kind`` of track ``track_id``; ``UnknownRule`` if either is unknown."""
    track = policies.track(track_id)
    try:
        return track.deadline(kind)
    except KeyError:
        raise UnknownRule(
            f"track {track_id!r} has no deadline {kind!r} "
            f"(deadlines: {[d.kind for d in track.deadlines]})"
        ) from None
