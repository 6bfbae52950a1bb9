"""The box's configuration (``edge.toml``); see ``firmware_config/edge.example.toml``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator

from contracts.divisions import Tier, parse_tier
from contracts.errors import ContractError
from contracts.topics import check_id
from edge.live.config import LiveConfig
from edge.media.config import MediaConfig, check_camera
from runtime.config import DiscoveryConfig, HttpConfig, LogLevel, MqttConfig, Section


class TelemetryConfig(Section):
    interval: float = Field(default=30.0, ge=0.5, le=3600, description="seconds between reports")


class HubDiscoveryConfig(Section):
    browse_seconds: float = Field(
        default=5.0,
        gt=0,
        le=120,
        description="how long each zeroconf browse for the hub waits when mqtt.host is unset",
    )


class EdgeConfig(Section):
    node_id: str = Field(description="this box's id; also its broker username (ACL %u)")
    township: str = Field(description="the township's division code (9 or 12 digits)")
    box_no: int = Field(
        default=1,
        ge=1,
        le=99,
        description="this box's number within its township (part of every case number)",
    )
    state_dir: Path = Field(description="writable data directory (SQLite, recordings)")
    hub_id: str | None = Field(
        default=None, description="wait for this hub's online state; unset: any hub"
    )
    camera: str = Field(
        default="synthetic",
        description='"synthetic" (a moving test pattern) or a V4L2 device such as /dev/video0',
    )
    upload_rate_bps: int | None = Field(
        default=250_000,
        ge=1000,
        description="bytes/s cap for photo and recording uploads, below the live video; "
        "unset: no cap",
    )
    clerk_password_file: str | None = Field(
        default=None,
        description="the clerk's password (file or credential name) for access from the LAN; "
        "unset: only the box's own screen may register cases",
    )
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    mqtt: MqttConfig = Field(default_factory=MqttConfig, description="broker connection")
    kiosk: HttpConfig = Field(
        default_factory=lambda: HttpConfig(port=8080), description="the kiosk's local web server"
    )
    kiosk_idle_seconds: int = Field(
        default=180,
        ge=3,
        le=3600,
        description="seconds without a touch before the kiosk asks whether the petitioner is "
        "still there; unanswered, it clears the screen for the next person (never during a "
        "call)",
    )
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig, description="health")
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig, description="zeroconf")
    hub_discovery: HubDiscoveryConfig = Field(
        default_factory=HubDiscoveryConfig, description="finding the hub when no broker is set"
    )
    media: MediaConfig = Field(
        default_factory=MediaConfig,
        description="live video: camera (default: the document camera), microphone, encoder "
        "and recording",
    )
    live: LiveConfig = Field(
        default_factory=LiveConfig,
        description="live reception: the signaling link (the hub sends its address and token) "
        "and the call's timers",
    )

    @field_validator("node_id", "hub_id")
    @classmethod
    def _id(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            return check_id(value)
        except ContractError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("camera")
    @classmethod
    def _camera(cls, value: str) -> str:
        return check_camera("camera", value)

    @field_validator("township")
    @classmethod
    def _township(cls, value: str) -> str:
        try:
            return parse_tier(value, Tier.TOWNSHIP).code
        except ContractError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="before")
    @classmethod
    def _media_camera(cls, data: Any) -> Any:
        """One camera serves documents and calls unless ``media.device`` says otherwise."""
        if isinstance(data, dict) and "camera" in data:
            media = data.get("media")
            if media is None or (isinstance(media, dict) and "device" not in media):
                data = {**data, "media": {**(media or {}), "device": data["camera"]}}
        return data

    @model_validator(mode="after")
    def _username(self) -> EdgeConfig:
        if self.mqtt.username is not None and self.mqtt.username != self.node_id:
            raise ValueError(
                f"mqtt.username ({self.mqtt.username!r}) must equal node_id ({self.node_id!r}): "
                "the broker ACL lets a box write only under its own username"
            )
        return self

    @property
    def database(self) -> Path:
        return self.state_dir / "edge.db"
