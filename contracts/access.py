"""Roles and access tokens, shared by the hub (which mints them) and signaling (which checks).

A token is a JWT (HS256) whose claims say who holds it, in which role, over which
jurisdiction (a division-code prefix), for which audience, until when.
"""

from __future__ import annotations

import datetime as dt
from enum import StrEnum
from typing import Any

import jwt
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.divisions import parse_division
from contracts.errors import InvalidDivisionCode, InvalidToken

ISSUER = "xfv-hub"


class Role(StrEnum):
    ADMIN = "admin"
    OFFICIAL = "official"
    MONITOR = "monitor"
    TRAINER = "trainer"
    PETITION_OFFICE = "petition_office"
    """信访部门: routes, accepts, merges and archives cases; answers reviews."""
    UNIT = "unit"
    """A responsible unit's (责任单位) case handler: accepts, handles and replies."""
    BOX = "box"
    """A township box itself (blob uploads); never a person's account."""

    @property
    def label_zh(self) -> str:
        return {
            "admin": "管理员",
            "official": "接访领导",
            "monitor": "督查",
            "trainer": "培训讲师",
            "petition_office": "信访部门",
            "unit": "责任单位",
            "box": "接访终端",
        }[self.value]


class Audience(StrEnum):
    API = "api"
    CONSOLE = "console"
    SIGNALING = "signaling"
    BLOBS = "blobs"


class Claims(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sub: str = Field(min_length=1, max_length=64, description="username")
    role: Role
    jur: str = Field(description="jurisdiction: a normalised division code")
    aud: Audience
    iat: int
    exp: int
    iss: str = ISSUER
    sid: str | None = Field(default=None, description="session scope, for signaling tokens")
    unit: str | None = Field(
        default=None,
        max_length=64,
        description="the responsible unit (责任单位) a ``unit`` holder works for; such a holder "
        "sees and acts on that unit's cases only",
    )

    @field_validator("jur")
    @classmethod
    def _jur(cls, value: str) -> str:
        try:
            return parse_division(value).code
        except InvalidDivisionCode as exc:
            raise ValueError(str(exc)) from None

    def covers(self, division: object) -> bool:
        """Whether ``division`` (a township or other division code; anything else, such as a
        missing township, is not covered) lies in this holder's jurisdiction."""
        return isinstance(division, str) and division.startswith(self.jur)


def bearer_token(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or ``None``."""
    scheme, _, token = (header or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None


def mint_token(
    key: bytes,
    *,
    sub: str,
    role: Role,
    jurisdiction: str,
    audience: Audience,
    ttl: dt.timedelta,
    now: dt.datetime | None = None,
    session: str | None = None,
    unit: str | None = None,
) -> str:
    """Sign a token for ``sub`` valid for ``ttl``."""
    issued = now or dt.datetime.now(dt.UTC)
    claims = Claims(
        sub=sub,
        role=role,
        jur=jurisdiction,
        aud=audience,
        sid=session,
        unit=unit,
        iat=int(issued.timestamp()),
        exp=int((issued + ttl).timestamp()),
    )
    return jwt.encode(claims.model_dump(exclude_none=True), key, algorithm="HS256")


def verify_token(key: bytes, token: str, audience: Audience) -> Claims:
    """Check signature, expiry, issuer and audience; raises ``InvalidToken`` saying which."""
    try:
        raw: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=["HS256"],
            audience=audience.value,
            issuer=ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.ExpiredSignatureError:
        raise InvalidToken("token has expired") from None
    except jwt.InvalidAudienceError:
        raise InvalidToken(f"token is not valid for audience {audience.value!r}") from None
    except jwt.PyJWTError as exc:
        raise InvalidToken(f"token rejected: {exc}") from None
    try:
        return Claims.model_validate(raw)
    except ValidationError as exc:
        raise InvalidToken(f"token claims invalid: {exc.errors()[0]['msg']}") from None
