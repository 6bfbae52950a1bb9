"""Deadline policies: the shipped file, user files, and the errors a bad file gives."""

from __future__ import annotations

from pathlib import Path

import pytest

from hub.errors import HubError
from hub.workflow.calendar import DayKind
from hub.workflow.policy import (
    PolicyError,
    PolicyFileError,
    UnknownRule,
    load_policies,
    rule,
)
from hub.workflow.states import Action, State

CAL, WORK = DayKind.CALENDAR, DayKind.WORKING

MINIMAL = """\
default_track = "t"

[tracks.t]
name_zh = "测试"
name_en = "test"

[[tracks.t.deadlines]]
kind = "handle"
label_zh = "办理期限"
label_en = "handling"
starts_on = ["accepted"]
ends_on = ["replied"]
days = 60
day_kind = "calendar"

[tracks.t.extension]
deadline = "handle"
max_days = 30
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "policies.toml"
    path.write_text(text, "utf-8")
    return path


def test_the_shipped_policies_load() -> None:
    policies = load_policies()
    assert set(policies.tracks) == {"regulation", "simple", "harbin_315"}
    assert policies.default_track == "regulation"
    assert policies.track().id == "regulation"


def test_the_regulation_track() -> None:
    track = load_policies().track("regulation")
    numbers = {d.kind: (d.days, d.day_kind) for d in track.deadlines}
    assert numbers == {
        "route": (15, CAL),
        "accept": (15, CAL),
        "handle": (60, CAL),
        "review_answer": (30, CAL),
        "recheck_answer": (30, CAL),
    }
    route = track.deadline("route")
    assert route.starts_on == [State.REGISTERED]
    assert set(route.ends_on) == {
        State.ROUTED,
        State.ACCEPTED,
        State.NOT_ACCEPTED,
        State.MERGED,
    }
    assert track.deadline("accept").starts_on == [State.ROUTED]
    assert set(track.deadline("accept").ends_on) == {
        State.ACCEPTED,
        State.NOT_ACCEPTED,
        State.MERGED,
    }
    handle = track.deadline("handle")
    assert (handle.starts_on, handle.ends_on) == ([State.ACCEPTED], [State.REPLIED])
    review = track.deadline("review_answer")
    assert (review.starts_on, review.ends_on) == ([State.REVIEW], [State.REVIEWED])
    recheck = track.deadline("recheck_answer")
    assert (recheck.starts_on, recheck.ends_on) == ([State.RECHECK], [State.RECHECKED])

    assert track.extension is not None
    ext = track.extension
    assert (ext.deadline, ext.max_days, ext.max_count, ext.requires_reason) == (
        "handle",
        30,
        1,
        True,
    )
    windows = {w.kind: (w.after, w.days, w.day_kind, w.allows) for w in track.windows}
    assert windows == {
        "review_request": (State.REPLIED, 30, CAL, Action.REQUEST_REVIEW),
        "recheck_request": (State.REVIEWED, 30, CAL, Action.REQUEST_RECHECK),
    }
    assert track.reminders_for(handle) == [15, 3]
    assert track.yellow_days_for(handle) == 3


def test_the_simple_track() -> None:
    track = load_policies().track("simple")
    accept, handle = track.deadline("accept"), track.deadline("handle")
    assert (accept.days, accept.day_kind, accept.starts_on) == (3, WORK, [State.REGISTERED])
    assert set(accept.ends_on) == {State.ACCEPTED, State.NOT_ACCEPTED, State.MERGED}
    assert (handle.days, handle.day_kind, handle.starts_on, handle.ends_on) == (
        10,
        WORK,
        [State.ACCEPTED],
        [State.REPLIED],
    )
    assert track.extension is None
    assert track.windows == []


def test_the_harbin_track() -> None:
    track = load_policies().track("harbin_315")
    route, handle = track.deadline("route"), track.deadline("handle")
    assert (route.days, route.day_kind, route.starts_on, route.ends_on) == (
        3,
        WORK,
        [State.REGISTERED],
        [State.ROUTED, State.ACCEPTED, State.NOT_ACCEPTED, State.MERGED],
    )
    assert (handle.days, handle.day_kind, handle.starts_on, handle.ends_on) == (
        15,
        WORK,
        [State.ROUTED],
        [State.REPLIED],
    )
    assert track.extension is None


def test_a_user_file_loads_with_the_defaults(tmp_path: Path) -> None:
    policies = load_policies(write(tmp_path, MINIMAL))
    track = policies.track("t")
    assert track.id == "t"  # taken from the table name
    assert (track.yellow_days, track.reminders, track.windows) == (3, [15, 3], [])
    assert track.extension is not None
    assert (track.extension.max_count, track.extension.requires_reason) == (1, True)
    assert rule(policies, "t", "handle").days == 60


def test_a_deadline_overrides_its_tracks_light_and_reminders(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        'day_kind = "calendar"', 'day_kind = "calendar"\nyellow_days = 5\nreminders = [1, 10]'
    )
    track = load_policies(write(tmp_path, text)).track("t")
    handle = track.deadline("handle")
    assert track.yellow_days_for(handle) == 5
    assert track.reminders_for(handle) == [10, 1]


def test_unknown_track_or_deadline() -> None:
    policies = load_policies()
    with pytest.raises(UnknownRule, match="'nope'"):
        rule(policies, "nope", "handle")
    with pytest.raises(UnknownRule, match="'nope'"):
        rule(policies, "simple", "nope")
    with pytest.raises(PolicyError):
        rule(policies, "simple", "route")  # a kind of another track


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            'starts_on = ["accepted"]',
            'starts_on = ["acepted"]',
            ["tracks.t.deadlines.0.starts_on.0", "'acepted'"],
            id="unknown-state",
        ),
        pytest.param(
            'default_track = "t"',
            'default_track = "regulation"',
            ["default_track", "no such track", "'regulation'"],
            id="default-track-unknown",
        ),
        pytest.param(
            'default_track = "t"',
            "",
            ["default_track", "required key is missing"],
            id="default-track-missing",
        ),
        pytest.param(
            'deadline = "handle"',
            'deadline = "handel"',
            ["tracks.t.extension", "'handel'", "not a deadline of this track"],
            id="extension-unknown-deadline",
        ),
        pytest.param(
            "days = 60",
            "days = -1",
            ["tracks.t.deadlines.0.days", "-1"],
            id="negative-days",
        ),
        pytest.param(
            'name_en = "test"',
            'name_en = "test"\ncolour = "red"',
            ["tracks.t.colour", "unknown key"],
            id="unknown-key",
        ),
        pytest.param(
            'name_en = "test"',
            'name_en = "test"\nreminders = [3, 0]',
            ["tracks.t.reminders", "positive", "[0]"],
            id="reminder-not-positive",
        ),
        pytest.param(
            'day_kind = "calendar"',
            'day_kind = "lunar"',
            ["tracks.t.deadlines.0.day_kind", "'lunar'"],
            id="unknown-day-kind",
        ),
        pytest.param(
            'ends_on = ["replied"]',
            'ends_on = ["replied", "accepted"]',
            ["tracks.t.deadlines.0", "both starts_on and ends_on", "accepted"],
            id="starts-and-stops-on-one-state",
        ),
        pytest.param(
            'kind = "handle"',
            'kind = "Handle!"',
            ["tracks.t.deadlines.0.kind", "'Handle!'"],
            id="kind-not-a-slug",
        ),
        pytest.param(
            'name_en = "test"',
            'name_en = "test"\nid = "other"',
            ["tracks", "'other'", "must be equal"],
            id="id-differs-from-key",
        ),
    ],
)
def test_a_bad_file_names_the_file_the_field_and_the_value(
    tmp_path: Path, old: str, new: str, expected: list[str]
) -> None:
    assert old in MINIMAL
    path = write(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(PolicyFileError) as caught:
        load_policies(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    for part in expected:
        assert part in message
    assert isinstance(caught.value, PolicyError)
    assert isinstance(caught.value, HubError)


def test_a_deadline_kind_may_not_repeat(tmp_path: Path) -> None:
    second = MINIMAL[
        MINIMAL.index("[[tracks.t.deadlines]]") : MINIMAL.index("[tracks.t.extension]")
    ]
    path = write(tmp_path, MINIMAL.replace(second, second + second))
    with pytest.raises(PolicyFileError, match=r"tracks\.t\.deadlines: .*'handle' appears more"):
        load_policies(path)


def test_a_window_may_not_reuse_a_deadline_kind(tmp_path: Path) -> None:
    window = """
[[tracks.t.windows]]
kind = "handle"
label_zh = "复查申请期"
label_en = "review request period"
after = "replied"
days = 30
day_kind = "calendar"
allows = "request_review"
"""
    with pytest.raises(PolicyFileError, match=r"tracks\.t\.windows: .*'handle'"):
        load_policies(write(tmp_path, MINIMAL + window))


def test_a_window_must_allow_a_known_action(tmp_path: Path) -> None:
    window = """
[[tracks.t.windows]]
kind = "review_request"
label_zh = "复查申请期"
label_en = "review request period"
after = "replied"
days = 30
day_kind = "calendar"
allows = "complain"
"""
    with pytest.raises(PolicyFileError, match=r"tracks\.t\.windows\.0\.allows: .*'complain'"):
        load_policies(write(tmp_path, MINIMAL + window))


def test_a_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyFileError, match="file not found"):
        load_policies(tmp_path / "absent.toml")
    with pytest.raises(PolicyFileError, match="not valid TOML"):
        load_policies(write(tmp_path, "default_track = "))
