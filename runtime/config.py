"""Loading TOML into pydantic models, the config pieces every part shares, and secrets.

Secrets are never in the TOML: a ``*_file`` field names a file, and a bare name (no ``/``)
is looked up in ``$CREDENTIALS_DIRECTORY`` (systemd ``LoadCredential=``).
"""

from __future__ import annotations

import os
import secrets
import tomllib
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from runtime.errors import ConfigError, SecretError

M = TypeVar("M", bound=BaseModel)


LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR"]


class Section(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class MqttConfig(Section):
    host: str | None = Field(
        default=None,
        description="broker host; when unset, a box finds its hub's broker by zeroconf",
    )
    port: int = Field(default=1883, ge=1, le=65535, description="broker port (8883 for TLS)")
    username: str | None = Field(default=None, description="broker user; boxes use their node id")
    password_file: str | None = Field(
        default=None, description="file holding the broker password, or a credential name"
    )
    tls: bool = Field(default=False, description="connect with TLS")
    ca_file: str | None = Field(default=None, description="CA bundle that signed the broker")
    keepalive: int = Field(
        default=30,
        ge=2,
        le=3600,
        description="seconds; the broker declares the client dead after 1.5 x keepalive",
    )
    reconnect_min: float = Field(default=1.0, gt=0, description="first reconnect delay, seconds")
    reconnect_max: float = Field(default=60.0, gt=0, description="largest reconnect delay, seconds")

    @model_validator(mode="after")
    def _check(self) -> MqttConfig:
        if self.reconnect_max < self.reconnect_min:
            raise ValueError(
                f"reconnect_max ({self.reconnect_max}) is below "
                f"reconnect_min ({self.reconnect_min})"
            )
        if self.ca_file and not self.tls:
            raise ValueError("ca_file is set but tls is false")
        if self.password_file and not self.username:
            raise ValueError("password_file is set but username is not")
        return self


class HttpConfig(Section):
    host: str = Field(default="127.0.0.1", description="address the HTTP server binds")
    port: int = Field(default=8080, ge=0, le=65535, description="HTTP port (0 picks a free one)")


class DiscoveryConfig(Section):
    announce: bool = Field(default=True, description="announce this service with zeroconf")
    interfaces: list[str] | Literal["all"] = Field(
        default="all", description='"all", or the IPv4 addresses to use for mDNS'
    )


def load_config(path: str | Path, model: type[M]) -> M:
    """Read TOML at ``path`` into ``model``; raises ``ConfigError`` listing every problem."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text("utf-8"))
    except FileNotFoundError:
        raise ConfigError(str(p), ["file not found"]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(str(p), [f"cannot read: {exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(p), [f"not valid TOML: {exc}"]) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(str(p), validation_problems(exc)) from None


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per problem: ``key.path: message (got 'value')``."""
    lines = []
    for err in exc.errors():
        key = ".".join(str(part) for part in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key is missing"
        elif "input" in err and not isinstance(err["input"], dict | list):
            shown = repr(err["input"])
            if shown not in msg:
                msg = f"{msg} (got {shown})"
        lines.append(f"{key}: {msg}")
    return lines


def read_secret(ref: str, base: Path | None = None) -> str:
    """Read a secret from a file path, or from ``$CREDENTIALS_DIRECTORY/ref`` for a bare name."""
    if "/" not in ref and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / ref
    else:
        path = Path(ref)
        if base is not None and not path.is_absolute():
            path = base / path
    try:
        return path.read_text("utf-8").strip()
    except OSError as exc:
        raise SecretError(f"cannot read secret {ref!r} at {str(path)!r}: {exc.strerror}") from None


def local_secret(path: Path) -> str:
    """A random 32-byte hex secret kept at ``path`` (mode 0600), created on first use."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # created meanwhile by another process
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
    return path.read_text().strip()
