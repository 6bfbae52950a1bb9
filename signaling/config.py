"""The signaling server's configuration (``signaling.toml``)."""

from __future__ import annotations

from pydantic import Field

from runtime.config import HttpConfig, LogLevel, Section


class SignalingConfig(Section):
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    http: HttpConfig = Field(
        default_factory=lambda: HttpConfig(port=8001), description="WebSocket and health server"
    )
    token_secret_file: str | None = Field(
        default=None, description="the hub's token signing key (file or credential name)"
    )
