"""The ``[live]`` section of ``edge.toml``: the signaling link and the call's timers."""

from __future__ import annotations

from pydantic import Field, model_validator

from runtime.config import Section


class LiveConfig(Section):
    enabled: bool = Field(
        default=True,
        description="offer live video reception (the hub sends where and how to connect)",
    )
    reconnect_min: float = Field(
        default=0.5,
        gt=0,
        le=60,
        description="first delay before reconnecting a dropped signaling socket, seconds "
        "(short: a session survives only within the server's rejoin grace)",
    )
    reconnect_max: float = Field(
        default=5.0, gt=0, le=300, description="largest reconnect delay, seconds"
    )
    answer_timeout: float = Field(
        default=8.0,
        gt=0,
        le=120,
        description="seconds to wait for the relay's answer before offering again",
    )
    summary_chars: int = Field(
        default=80,
        ge=10,
        le=500,
        description="characters of the case content officials see in the queue",
    )
    ended_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="seconds the kiosk shows the end of a call before returning to idle",
    )

    @model_validator(mode="after")
    def _check(self) -> LiveConfig:
        if self.reconnect_max < self.reconnect_min:
            raise ValueError(
                f"reconnect_max ({self.reconnect_max}) is below "
                f"reconnect_min ({self.reconnect_min})"
            )
        return self
