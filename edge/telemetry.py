"""Sampling the box's health for the telemetry topic."""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

from contracts.telemetry import Telemetry

_STARTED = time.monotonic()


def cpu_temperature() -> float | None:
    """The hottest CPU/SoC sensor in °C, or ``None`` where the platform has none."""
    reader = getattr(psutil, "sensors_temperatures", None)
    if reader is None:
        return None
    try:
        sensors = reader()
    except (OSError, RuntimeError):
        return None
    readings = [t.current for entries in sensors.values() for t in entries if t.current]
    return max(readings) if readings else None


def sample(node: str, data_dir: Path, outbox_depth: int = 0) -> Telemetry:
    """Read load, memory, disk, temperature and uptimes now."""
    load1, load5, load15 = os.getloadavg()
    mem = psutil.virtual_memory()
    disk = psutil.disk_usage(str(data_dir))
    return Telemetry(
        node=node,
        uptime_s=max(0.0, time.time() - psutil.boot_time()),
        process_uptime_s=time.monotonic() - _STARTED,
        load1=load1,
        load5=load5,
        load15=load15,
        mem_total=mem.total,
        mem_available=mem.available,
        disk_total=disk.total,
        disk_free=disk.free,
        cpu_temp_c=cpu_temperature(),
        outbox_depth=outbox_depth,
    )
