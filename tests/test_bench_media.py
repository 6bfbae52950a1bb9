"""``bench/media.py`` runs end to end: ``--quick`` ends with one strict-JSON line of sane figures,
and neither a normal run nor Ctrl-C leaves a worker process behind. No timing is asserted (the
targets are the benchmark's business); the values are checked for being physically possible.

The quick run takes 30-60 s on the 2-core machine (longer than other tests): it starts four
processes and real aiortc calls, and measures four things over short windows.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).parents[1]
SCRIPT = ROOT / "bench" / "media.py"
TAG = "XFV_BENCH_TAG"


def _tagged(tag: str) -> list[psutil.Process]:
    """Live processes started with ``XFV_BENCH_TAG=tag`` in their environment."""
    found = []
    for proc in psutil.process_iter():
        try:
            if proc.environ().get(TAG) == tag and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc)
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue
    return found


def _env(tag: str) -> dict[str, str]:
    return {**os.environ, TAG: tag, "PYTHONUNBUFFERED": "1"}


def _strict_json(line: str) -> dict[str, Any]:
    def refuse(name: str) -> None:
        raise ValueError(f"{name} in the figures is not JSON")

    figures = json.loads(line, parse_constant=refuse)
    assert isinstance(figures, dict), line
    return figures


def _number(figures: dict[str, Any], key: str, low: float, high: float) -> float:
    value = figures[key]
    assert isinstance(value, int | float) and math.isfinite(value), f"{key} = {value!r}"
    assert low <= value <= high, f"{key} = {value} outside [{low}, {high}]"
    return float(value)


@pytest.mark.timeout(240)
def test_quick_run_ends_with_sane_figures_and_leaves_no_process() -> None:
    tag = uuid.uuid4().hex
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT,
        env=_env(tag),
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    lines = done.stdout.strip().splitlines()
    assert "ratio pass-through / MediaRelay" in done.stdout, "the table is printed"
    figures = _strict_json(lines[-1])
    assert figures["quick"] is True
    assert (figures["width"], figures["height"], figures["fps"]) == (640, 480, 15)

    for mode in ("stock", "direct", "relay"):
        p50 = _number(figures, f"latency_{mode}_p50_ms", 0, 2000)
        assert _number(figures, f"latency_{mode}_p95_ms", 0, 5000) >= p50
        frames = _number(figures, f"latency_{mode}_frames", 15, 60)  # 2 s at 15 fps
        assert _number(figures, f"latency_{mode}_lost", 0, frames) < frames
    assert figures["accept_joins"] == 3
    p50 = _number(figures, "accept_ms_p50", 1, 30_000)
    assert _number(figures, "accept_ms_max", p50, 30_000) >= p50

    cores = psutil.cpu_count() or 2
    for name, counts in (("pass", [0, 4, 16]), ("mediarelay", [0, 2])):
        assert figures[f"{name}_watchers"] == counts
        assert len(figures[f"{name}_cores"]) == len(counts)
        assert all(0 <= c <= cores for c in figures[f"{name}_cores"]), figures[f"{name}_cores"]
        effective = figures[f"{name}_effective_watchers"]
        assert effective[0] == 0 and all(e > 0 for e in effective[1:]), "watchers got frames"
        _number(figures, f"{name}_stream_kbps", 100, 2000)  # a ~500 kbps stream
        _number(figures, f"{name}_core_per_watcher", 1e-6, cores)
    assert figures["mediarelay_effective_watchers"][-1] > 0.5, "re-encoded frames arrived"
    assert figures["pass_effective_watchers"][-1] > 8, "16 pass-through watchers got frames"
    # pass-through costs a watcher far less than re-encoding for it, or it is not pass-through
    assert _number(figures, "per_watcher_ratio", 1e-6, 1) < 1
    _number(figures, "watchers_per_core", 1, 1e6)

    raw = _number(figures, "box_raw_cpu_ms_per_frame", 0.01, 1000)
    call = _number(figures, "box_call_cpu_ms_per_frame", 0.01, 1000)
    assert figures["box_ratio"] == pytest.approx(call / raw, rel=0.01)
    assert _number(figures, "box_call_sent_packets", 1, 10_000) > 0
    assert _number(figures, "box_call_recorded_packets", 1, 10_000) > 0

    assert _tagged(tag) == [], "a worker outlived the benchmark"


@pytest.mark.timeout(120)
def test_ctrl_c_stops_the_benchmark_and_every_worker() -> None:
    tag = uuid.uuid4().hex
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--quick"],
        cwd=ROOT,
        env=_env(tag),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # a process group of its own, as a terminal's foreground job
    )
    try:
        assert proc.stderr is not None
        seen = []
        for line in proc.stderr:
            seen.append(line)
            if "(1) latency" in line:  # the workers are up; a call is being set up
                break
        assert len(_tagged(tag)) == 4, f"the benchmark and 3 workers run: {''.join(seen)}"
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + err
    assert "interrupted; workers stopped" in err
    assert _tagged(tag) == [], "a worker outlived the interrupted benchmark"
