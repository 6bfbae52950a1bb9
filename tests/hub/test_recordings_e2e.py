"""A session recording from the box to the case page: a real Recorder file sealed into the
box's chain, sent through a real Mosquitto to a real hub process, uploaded and verified, then
played back as MP4 per side, scoped to the jurisdiction and audited."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from contracts import framestamp
from contracts.cases import validate_case_form
from edge.media.recorder import RecordedFile
from edge.store.db import EdgeStore
from tests.edge.test_recordings import crashed_recording, make_recording
from tests.support.broker import Mosquitto
from tests.support.events import FORM, id_number
from tests.support.procs import Hub, XfvProcess, http_json, start_edge, wait_until

TOWNSHIP = "510104021"
SLOW = 60.0
"""Seconds to wait for a process to come up: generous, as the shared 2-core machine may be
busy with other suites (the hub imports PyAV and aiortc before it serves)."""


@pytest.fixture
def hub(tmp_path: Path, mosquitto: Mosquitto) -> Iterator[Hub]:
    h = Hub(tmp_path / "hub", mosquitto).start(timeout=SLOW)
    yield h
    h.stop()


def fetch(url: str, token: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, Any]:
    req = urllib.request.Request(
        url, headers={"Authorization": f"Bearer {token}", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(req, timeout=20) as resp:
            return resp.status, resp.read(), resp.headers
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), exc.headers


def case_state(hub: Hub, token: str, case_no: str) -> dict[str, Any] | None:
    status, case = http_json(f"{hub.base}/api/v1/cases/{case_no}", token)
    return case if status == 200 else None


async def _seal(database: Path, node: str, rec: RecordedFile) -> str:
    form = validate_case_form({**FORM, "id_number": id_number(31)})
    assert not isinstance(form, dict), form
    async with EdgeStore(database, node) as store:
        case_no = (await store.register_case(form, TOWNSHIP, 1)).case_no
        await store.add_recording(case_no, "sess-1", rec)
    return case_no


def deliver(
    tmp_path: Path,
    hub: Hub,
    mosquitto: Mosquitto,
    processes: list[XfvProcess],
    node: str,
    rec: RecordedFile,
    token: str,
) -> tuple[str, list[tuple[int, int, bool]]]:
    """Register a case in ``node``'s store and seal ``rec`` into its chain (as the box does
    when a session's recorder closes, or at start-up after a crash), start the box and wait
    until the hub has the recording verified. Returns the case number and every
    (recordings_total, recordings_verified, complete) the hub showed meanwhile."""
    case_no = asyncio.run(_seal(tmp_path / node / "state" / "edge.db", node, rec))
    box = start_edge(tmp_path / node, node, TOWNSHIP, mosquitto, upload_rate_bps=rec.size // 3)
    processes.append(box)
    seen: list[tuple[int, int, bool]] = []

    def verified() -> bool:
        case = case_state(hub, token, case_no)
        if case is None:
            return False
        seen.append((case["recordings_total"], case["recordings_verified"], case["complete"]))
        return bool(case["recordings_verified"] == 1 and case["complete"])

    wait_until("the recording verified at the hub", verified, timeout=SLOW, interval=0.1)
    return case_no, seen


def mp4_media(data: bytes, path: Path) -> tuple[list[int], float, float, float]:
    """Frame numbers stamped in the MP4's video, its video span (first to last frame plus
    one frame), its audio seconds, and the audio's dominant frequency."""
    path.write_bytes(data)
    with av.open(str(path)) as c:
        assert [s.codec_context.name for s in c.streams] == ["h264", "aac"]
        numbers, times = [], []
        for frame in c.decode(video=0):
            stamp = framestamp.read(frame.to_ndarray(format="gray"))
            assert stamp is not None
            numbers.append(stamp[0])
            times.append(frame.time)
    with av.open(str(path)) as c:
        samples = np.concatenate([f.to_ndarray().reshape(-1) for f in c.decode(audio=0)])
    spectrum = np.abs(np.fft.rfft(samples[48_000 // 2 : 48_000 // 2 + 48_000]))
    peak = float(np.argmax(spectrum))  # 1 s of samples: bins are 1 Hz apart
    return numbers, times[-1] - times[0] + 1 / 15, len(samples) / 48_000, peak


def test_a_recording_is_verified_before_the_case_completes_and_plays_per_side(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    rec = asyncio.run(make_recording(tmp_path / "rec", "session", 3.0))
    hub.add_user("county", "official", "510104", "county-password")
    hub.add_user("neighbour", "official", "510105", "neighbour-password")
    token = hub.login("county", "county-password")
    case_no, seen = deliver(tmp_path, hub, mosquitto, processes, "box-j", rec, token)

    assert (1, 0, False) in seen, seen  # the hub had the event before the file, incomplete
    assert all(not complete for total, done, complete in seen if done < total), seen
    case = case_state(hub, token, case_no)
    assert case is not None
    kinds = [t["kind"] for t in case["timeline"]]
    assert kinds[0] == "registered" and kinds[-2:] == ["recording_added", "recording_verified"]
    assert json.loads(case["timeline"][-1]["detail"]) == {"sha256": rec.sha256, "complete": True}

    status, listed = http_json(f"{hub.base}/api/v1/cases/{case_no}/recordings", token)
    assert status == 200, listed
    [item] = listed["recordings"]
    assert item["sha256"] == rec.sha256 and item["verified"] and item["session_id"] == "sess-1"
    assert [s["side"] for s in item["sides"]] == ["box", "official"]

    for side, tone in (("box", 440), ("official", 660)):
        [entry] = [s for s in item["sides"] if s["side"] == side]
        status, body, headers = fetch(hub.base + entry["url"], token)
        assert status == 200 and headers["Content-Type"] == "video/mp4", (status, body[:200])
        numbers, span, audio, peak = mp4_media(body, tmp_path / f"{side}.mp4")
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), numbers
        assert abs(span - entry["duration_s"]) <= 0.5, (span, entry)
        assert abs(span - 3.0) <= 0.5 and abs(audio - 3.0) <= 0.5, (span, audio)
        assert abs(peak - tone) <= 5, (side, peak)
    status, part, headers = fetch(
        hub.base + item["sides"][0]["url"], token, {"Range": "bytes=0-99"}
    )
    assert status == 206 and len(part) == 100 and part[4:8] == b"ftyp"
    status, body, _ = fetch(hub.base + item["sides"][0]["url"].replace("box", "nobody"), token)
    assert status == 400 and b"side must be one of box, official" in body

    reads = hub.query(
        "SELECT actor, target, detail FROM audit WHERE action = 'pii.read' ORDER BY id"
    )
    details = [(a, t, json.loads(d)) for a, t, d in reads]
    assert [(a, t, d["field"], d["sha256"], d["side"]) for a, t, d in details] == [
        ("county", case_no, "recording", rec.sha256, "box"),
        ("county", case_no, "recording", rec.sha256, "official"),
        ("county", case_no, "recording", rec.sha256, "box"),
    ]

    outsider = hub.login("neighbour", "neighbour-password")
    for url in (item["sides"][1]["url"], f"/api/v1/cases/{case_no}/recordings"):
        status, body, _ = fetch(hub.base + url, outsider)
        assert status == 403, (url, body)
    denied = hub.query("SELECT actor, target FROM audit WHERE action = 'case.denied'")
    assert denied == [("neighbour", case_no)] * 2
    assert len(hub.query("SELECT 1 FROM audit WHERE action = 'pii.read'")) == 3


def test_a_recording_cut_off_by_a_crash_plays_on_the_hub(
    tmp_path: Path, hub: Hub, mosquitto: Mosquitto, processes: list[XfvProcess]
) -> None:
    rec, elapsed = crashed_recording(tmp_path / "rec", 3.0)
    token = hub.login()
    case_no, _ = deliver(tmp_path, hub, mosquitto, processes, "box-h", rec, token)
    _, listed = http_json(f"{hub.base}/api/v1/cases/{case_no}/recordings", token)
    [item] = listed["recordings"]
    assert item["verified"] and abs(item["duration_s"] - elapsed) <= 2.0
    [box] = [s for s in item["sides"] if s["side"] == "box"]
    status, body, _ = fetch(hub.base + box["url"], token)
    assert status == 200, body[:200]
    numbers, span, _, _ = mp4_media(body, tmp_path / "box.mp4")
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))) and numbers[0] <= 1
    assert abs(span - box["duration_s"]) <= 0.5 and elapsed - 2.0 <= span <= elapsed + 0.5
