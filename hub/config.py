"""The hub's configuration (``hub.toml``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, IPvAnyNetwork, field_validator, model_validator

from contracts.access import Role
from contracts.divisions import parse_division
from contracts.errors import ContractError
from contracts.topics import check_id
from hub.media.config import RelayConfig
from runtime.config import DiscoveryConfig, HttpConfig, LogLevel, MqttConfig, Section


class AuthConfig(Section):
    secret_file: str | None = Field(
        default=None,
        description="token signing key (file or credential name); unset: state_dir/hub.key, "
        "created on first start",
    )
    token_ttl_minutes: int = Field(default=480, ge=1, le=7 * 24 * 60, description="token life")
    cookie_secure: bool = Field(
        default=False, description="mark the console cookie Secure (set true behind HTTPS)"
    )
    max_login_failures: int = Field(
        default=5, ge=1, description="failed logins per user and client before a 5-minute pause"
    )


class AnnounceConfig(Section):
    mqtt_host: str | None = Field(
        default=None, description="broker host boxes should use; unset: the hub's own address"
    )
    mqtt_port: int | None = Field(
        default=None, ge=1, le=65535, description="broker port boxes should use; unset: mqtt.port"
    )


class SyncConfig(Section):
    reorder_timeout: float = Field(
        default=2.0,
        gt=0,
        le=600,
        description="seconds an event after a gap waits before the hub asks the box to resync",
    )
    batch_max: int = Field(
        default=500, ge=1, le=10_000, description="most events committed in one transaction"
    )
    pii_key_file: str | None = Field(
        default=None,
        description="32-byte hex master key for personal data (file or credential name); "
        "unset: state_dir/pii.key, created on first start",
    )
    max_blob_bytes: int = Field(
        default=1024**3,
        ge=1024**2,
        le=16 * 1024**3,
        description="largest blob (a photo, a session recording) a box may upload, bytes; a "
        "30-minute recording of both sides is about 200 MB",
    )


REPLY_ELEMENTS = (
    "受理告知",
    "办理情况",
    "处理意见",
    "答复意见书",
    "送达时间",
    "信访人签字",
    "经办人签字",
)


class WebhookConfig(Section):
    url: str = Field(description="where reminders are POSTed as JSON (an SMS gateway's hook)")
    timeout: float = Field(default=10.0, gt=0, le=120, description="seconds per attempt")
    token_file: str | None = Field(
        default=None, description="bearer token for the hook (file or credential name)"
    )


class WorkflowConfig(Section):
    policies_file: Path | None = Field(
        default=None, description="deadline policies (TOML); unset: the shipped policies"
    )
    reply_elements: list[str] = Field(
        default_factory=lambda: list(REPLY_ELEMENTS),
        min_length=1,
        description="what a reply must contain to be accepted (otherwise 发回重办)",
    )
    accusation_roles: list[Role] = Field(
        default_factory=lambda: [Role.PETITION_OFFICE, Role.OFFICIAL],
        description="roles that may see 检举控告 (accusation) cases at all",
    )
    scan_interval: float = Field(
        default=60.0, gt=0, le=3600, description="seconds between deadline scans"
    )
    webhook: WebhookConfig | None = Field(
        default=None, description="send reminders to this webhook too (unset: console only)"
    )


def _ws_url(value: str | None, key: str) -> str | None:
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ValueError(f"{key} must be a ws:// or wss:// URL with a host, got {value!r}")
    return value


class SignalingLink(Section):
    """Where live reception's signaling server is; unset ``url``: live reception is off (no
    relay, no agent, no signaling token for boxes or users)."""

    url: str | None = Field(
        default=None,
        description="the signaling WebSocket as boxes and browsers reach it, e.g. "
        "ws://hub.example:8001/ws; unset or empty: live reception is off",
    )
    internal_url: str | None = Field(
        default=None,
        description="the signaling WebSocket as the hub's relay agent reaches it (e.g. over "
        "loopback); unset: url",
    )
    jurisdiction: str = Field(
        default="51",
        description="the division code this hub serves (the relay token's jurisdiction)",
    )
    reconnect_min: float = Field(
        default=0.5, gt=0, le=60, description="seconds before the agent's first reconnect"
    )
    reconnect_max: float = Field(
        default=10.0, gt=0, le=600, description="longest pause between the agent's reconnects"
    )
    subscribe_wait: float = Field(
        default=15.0,
        gt=0,
        le=120,
        description="seconds a subscribe offer waits for its source to publish before the "
        "relay answers media_failed",
    )

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return _ws_url(value, "signaling.url")

    @field_validator("internal_url")
    @classmethod
    def _internal(cls, value: str | None) -> str | None:
        return _ws_url(value, "signaling.internal_url")

    @field_validator("jurisdiction")
    @classmethod
    def _jur(cls, value: str) -> str:
        try:
            return parse_division(value).code
        except ContractError as exc:
            raise ValueError(str(exc)) from None

    @model_validator(mode="after")
    def _check(self) -> SignalingLink:
        if self.reconnect_max < self.reconnect_min:
            raise ValueError(
                f"reconnect_max ({self.reconnect_max}) is below reconnect_min "
                f"({self.reconnect_min})"
            )
        if self.internal_url and not self.url:
            raise ValueError("internal_url is set but url is not: set url to turn live on")
        return self

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @property
    def agent_url(self) -> str | None:
        """Where the relay agent connects (``internal_url``, else ``url``)."""
        return self.internal_url or self.url


class HubHttpConfig(HttpConfig):
    trusted_proxies: list[IPvAnyNetwork] = Field(
        default_factory=list,
        description="the reverse proxies (addresses or networks, e.g. ['127.0.0.1', '::1']) "
        "whose X-Forwarded-For is believed: a request from one of them comes from the "
        "rightmost address of that header that is not a trusted proxy itself (the query and "
        "login limits and the audit log use it); empty: the connecting address is the client",
    )


class HubConfig(Section):
    hub_id: str = Field(description="this hub's id, e.g. the city code 'hub-5101'")
    state_dir: Path = Field(description="writable data directory (SQLite, keys)")
    log_level: LogLevel = Field(default="INFO", description="DEBUG, INFO, WARNING or ERROR")
    http: HubHttpConfig = Field(
        default_factory=lambda: HubHttpConfig(port=8000), description="API and console server"
    )
    mqtt: MqttConfig = Field(
        default_factory=lambda: MqttConfig(host="127.0.0.1"), description="broker connection"
    )
    recording_cache_mb: int = Field(
        default=4096,
        ge=16,
        le=10_000_000,
        description="MB of MP4s made for playback kept in state_dir/recording-cache; past it "
        "the least recently played go first (one played again is made again)",
    )
    public_url: str | None = Field(
        default=None,
        description="the hub's HTTP address as boxes reach it (blob uploads); "
        "unset: http://<http.host>:<http.port>",
    )
    auth: AuthConfig = Field(default_factory=AuthConfig, description="logins and tokens")
    discovery: DiscoveryConfig = Field(default_factory=DiscoveryConfig, description="zeroconf")
    sync: SyncConfig = Field(default_factory=SyncConfig, description="event ingest")
    workflow: WorkflowConfig = Field(
        default_factory=WorkflowConfig, description="case workflow: deadlines, reminders"
    )
    announce: AnnounceConfig = Field(
        default_factory=AnnounceConfig, description="what the zeroconf announcement tells boxes"
    )
    signaling: SignalingLink = Field(
        default_factory=SignalingLink,
        description="live reception: the signaling server boxes, browsers and the relay use",
    )
    relay: RelayConfig = Field(
        default_factory=RelayConfig, description="live reception: the media relay (SFU)"
    )

    @field_validator("hub_id")
    @classmethod
    def _id(cls, value: str) -> str:
        try:
            return check_id(value, "hub_id")
        except ContractError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("mqtt")
    @classmethod
    def _broker(cls, value: MqttConfig) -> MqttConfig:
        if not value.host:
            raise ValueError("mqtt.host is required for the hub")
        return value

    def upload_url(self, port: int | None = None) -> str:
        return self.public_url or f"http://{self.http.host}:{port or self.http.port}"

    @property
    def database(self) -> Path:
        return self.state_dir / "hub.db"
