"""Base class and decoding for every message that crosses a wire."""

from __future__ import annotations

import datetime as dt
import functools
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, TypeAdapter, ValidationError

from contracts.chain import load_json
from contracts.errors import InvalidNodeId, MalformedMessage
from contracts.topics import check_id

MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest MQTT payload any part accepts; larger ones are quarantined, never parsed."""


class WireModel(BaseModel):
    """Immutable, strict about unknown fields; ``v`` is the schema version of each model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def to_payload(self) -> bytes:
        return self.model_dump_json().encode("utf-8")


def _node(value: str) -> str:
    try:
        return check_id(value)
    except InvalidNodeId as exc:
        raise ValueError(str(exc)) from None


NodeId = Annotated[str, AfterValidator(_node)]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def decode(model: type[M], payload: bytes | bytearray | str) -> M:
    """Parse a JSON payload into ``model``; raises ``MalformedMessage`` saying why."""
    adapter: TypeAdapter[M] = _adapter(model)
    return decode_as(adapter, model.__name__, payload)


@functools.cache
def _adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    """Building a TypeAdapter costs ~65 us; one per model, built once."""
    return TypeAdapter(model)


def decode_as(adapter: TypeAdapter[T], name: str, payload: bytes | bytearray | str) -> T:
    """Parse a JSON payload with ``adapter`` (e.g. a union of models) after the size check."""
    size = len(payload.encode("utf-8")) if isinstance(payload, str) else len(payload)
    if size > MAX_PAYLOAD_BYTES:
        raise MalformedMessage(f"{name} payload of {size} bytes exceeds {MAX_PAYLOAD_BYTES}")
    try:
        return adapter.validate_json(payload)
    except ValidationError as exc:
        raise MalformedMessage(f"{name}: {_summary(exc)}") from None


def decode_record(model: type[M], payload: bytes) -> tuple[M, Any]:
    """Like ``decode``, but also return the parsed JSON (to hash exactly what was sent), from
    one parse: orjson's, then the model validated from the result."""
    try:
        record = load_json(payload) if len(payload) <= MAX_PAYLOAD_BYTES else None
    except (ValueError, RecursionError):
        record = None
    if not isinstance(record, dict):  # too big, not JSON, not an object: ``decode`` says so
        decode(model, payload)
        raise MalformedMessage(f"{model.__name__}: payload is not a JSON object")
    try:
        return _adapter(model).validate_python(record), record
    except ValidationError as exc:
        raise MalformedMessage(f"{model.__name__}: {_summary(exc)}") from None


def _summary(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def as_payload(value: Any) -> bytes:
    """Encode a wire model (or plain JSON value) as bytes."""
    if isinstance(value, BaseModel):
        return value.model_dump_json().encode("utf-8")
    import json

    return json.dumps(value, ensure_ascii=False).encode("utf-8")
