"""The signaling server's configuration (``signaling.toml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator

from runtime.config import HttpConfig, LogLevel, Section


class SignalingConfig(Section):
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    http: HttpConfig = Field(
        default_factory=lambda: HttpConfig(port=8001), description="WebSocket and health server"
    )
    token_secret_file: str | None = Field(
        default=None,
        description="the hub's token signing key (file or credential name); unset: every "
        "connection is refused",
    )
    rejoin_grace: float = Field(
        default=30.0,
        gt=0,
        le=600,
        description="seconds a participant whose socket dropped may rejoin before its session "
        "ends (or its waiting request is withdrawn)",
    )
    hello_timeout: float = Field(
        default=10.0, gt=0, le=120, description="seconds a new socket has to send its token"
    )
    heartbeat: float = Field(
        default=15.0,
        gt=0,
        le=300,
        description="seconds between WebSocket pings; a socket without pong is closed",
    )
    outbox_frames: int = Field(
        default=256,
        ge=8,
        le=100_000,
        description="frames queued for one socket before it is closed as too slow",
    )
    events_db: Path | None = Field(
        default=None,
        description="SQLite file of the session events not yet acknowledged by the hub "
        "(the outbox; created if missing); unset: kept in memory only and lost when the "
        "server stops (tests)",
    )
    event_buffer: int = Field(
        default=10_000,
        ge=10,
        le=1_000_000,
        description="unacknowledged session events at which a warning is logged (and again "
        "at every doubling); none is dropped, the outbox keeps them all",
    )

    @field_validator("events_db")
    @classmethod
    def _a_file(cls, value: Path | None) -> Path | None:
        if value is not None and value.is_dir():
            raise ValueError(f"events_db {str(value)!r} is a directory, not a database file")
        return value
