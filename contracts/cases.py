"""Cases as the box registers them: the form, its per-field validation, the case number,
and the bodies of the case events that travel in the outbox.

Field errors carry a ``code`` (for the kiosk's Chinese/English text) and an English message.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.errors import ContractError, InvalidIdNumber
from contracts.ids import parse_resident_id
from contracts.phone import parse_mobile

CASE_REGISTERED = "case.registered"
PHOTO_ADDED = "case.photo_added"
CASE_NO_RE = re.compile(r"\d{9}-\d{2}-\d{6}-\d{4}")


class Category(StrEnum):
    SUGGESTION = "suggestion"
    ACCUSATION = "accusation"
    CLAIM = "claim"

    @property
    def label_zh(self) -> str:
        return {"suggestion": "建议意见", "accusation": "检举控告", "claim": "申诉求决"}[self.value]


LIMITS = {"name": 50, "address": 200, "concerned_unit": 100, "content": 5000}


@dataclass(frozen=True, slots=True)
class FieldError:
    code: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


class CaseForm(BaseModel):
    """A validated registration; ``id_number`` and ``phone`` are normalised."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    id_number: str
    phone: str
    address: str
    category: Category
    concerned_unit: str
    content: str


def validate_case_form(
    data: Mapping[str, Any], today: dt.date | None = None
) -> CaseForm | dict[str, FieldError]:
    """The form, or every field's error (``required``, ``too_long``, ``not_text``, the ID
    number's own codes, ``invalid_phone``, ``unknown_category``, ``unknown_field``)."""
    errors: dict[str, FieldError] = {}
    values: dict[str, str] = {}
    for key in sorted(set(data) - set(CaseForm.model_fields)):
        errors[key] = FieldError("unknown_field", f"unknown field {key!r}")
    for key in CaseForm.model_fields:
        raw = data.get(key)
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            errors[key] = FieldError("required", f"{key} is required")
        elif not isinstance(raw, str):
            errors[key] = FieldError("not_text", f"{key} must be text")
        elif key in LIMITS and len(raw.strip()) > LIMITS[key]:
            errors[key] = FieldError(
                "too_long", f"{key} has {len(raw.strip())} characters; at most {LIMITS[key]}"
            )
        else:
            values[key] = raw.strip()
    if "id_number" in values:
        try:
            values["id_number"] = parse_resident_id(values["id_number"], today).number
        except InvalidIdNumber as exc:
            errors["id_number"] = FieldError(exc.code, str(exc))
    if "phone" in values:
        try:
            values["phone"] = parse_mobile(values["phone"])
        except ContractError as exc:
            errors["phone"] = FieldError("invalid_phone", str(exc))
    if "category" in values and values["category"] not in {c.value for c in Category}:
        errors["category"] = FieldError(
            "unknown_category",
            f"category must be one of {', '.join(c.value for c in Category)}, "
            f"got {values['category']!r}",
        )
    if errors:
        return errors
    return CaseForm.model_validate(values)


def case_number(township: str, box_no: int, day: dt.date, n: int) -> str:
    """``510104021-01-261121-0007``: township, box number in it, date, the day's count."""
    return f"{township}-{box_no:02d}-{day:%y%m%d}-{n:04d}"


class PhotoRef(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size: int = Field(ge=1)
    mime: Literal["image/jpeg", "image/png"]


class CaseRegistered(BaseModel):
    """Body of a ``case.registered`` event."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_no: str = Field(pattern=CASE_NO_RE.pattern)
    township: str
    registered_at: dt.datetime
    form: CaseForm
    query_code: str = Field(pattern=r"^\d{6}$", description="the petitioner's secret code")
    photos: list[PhotoRef] = Field(default_factory=list)


class PhotoAdded(BaseModel):
    """Body of a ``case.photo_added`` event (a photo taken after registration)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    case_no: str = Field(pattern=CASE_NO_RE.pattern)
    photo: PhotoRef
