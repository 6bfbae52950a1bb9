"""The playback cache of recordings (``hub.api.recordings.evict``) on real files."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hub.api.recordings import RECENT_SECONDS, evict
from hub.config import HubConfig

MB = 1024 * 1024


def cached(cache: Path, name: str, size_mb: int, played_ago: float) -> Path:
    path = cache / name
    path.write_bytes(b"\0" * (size_mb * MB))
    at = time.time() - played_ago
    os.utime(path, (at, at))
    return path


def test_the_least_recently_played_go_first_until_the_rest_fit(tmp_path: Path) -> None:
    oldest = cached(tmp_path, "a-box.mp4", 3, played_ago=3600)
    older = cached(tmp_path, "b-box.mp4", 3, played_ago=1800)
    newer = cached(tmp_path, "c-official.mp4", 3, played_ago=600)
    making = tmp_path / ".d-box.mp4.123.tmp"  # a remux under way
    making.write_bytes(b"\0" * (5 * MB))
    assert evict(tmp_path, 7 * MB, time.time()) == [oldest]
    assert evict(tmp_path, 3 * MB, time.time()) == [older]
    assert sorted(p.name for p in tmp_path.iterdir()) == [making.name, newer.name]
    assert evict(tmp_path, 3 * MB, time.time()) == []  # it fits


def test_one_played_just_now_stays_even_over_the_budget(tmp_path: Path) -> None:
    playing = cached(tmp_path, "a-box.mp4", 4, played_ago=RECENT_SECONDS / 2)
    idle = cached(tmp_path, "b-box.mp4", 4, played_ago=RECENT_SECONDS * 2)
    assert evict(tmp_path, 1 * MB, time.time()) == [idle]
    assert playing.exists()


def test_the_budget_is_a_validated_setting() -> None:
    base = {"hub_id": "hub-5101", "state_dir": "/tmp/x"}
    assert HubConfig.model_validate(base).recording_cache_mb == 4096
    with pytest.raises(ValueError, match="recording_cache_mb"):
        HubConfig.model_validate({**base, "recording_cache_mb": 1})
