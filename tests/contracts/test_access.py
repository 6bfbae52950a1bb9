"""Access tokens: minting, verification and every way a token is refused."""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from contracts.access import ISSUER, Audience, Claims, Role, mint_token, verify_token
from contracts.errors import InvalidToken

KEY = b"k" * 32
OTHER_KEY = b"o" * 32
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
HOUR = dt.timedelta(hours=1)


def mint(**overrides: Any) -> str:
    args: dict[str, Any] = {
        "sub": "wang.wu",
        "role": Role.OFFICIAL,
        "jurisdiction": "510104",
        "audience": Audience.API,
        "ttl": HOUR,
        "now": NOW,
    }
    return mint_token(KEY, **(args | overrides))


def sign(claims: dict[str, Any], drop: str = "") -> str:
    """A token signed with ``KEY`` outside ``mint_token``, from valid claims plus ``claims``."""
    base = {"sub": "u", "role": "admin", "jur": "51", "aud": "api", "iss": ISSUER}
    times = {"iat": int(NOW.timestamp()), "exp": int((NOW + HOUR).timestamp())}
    payload = {k: v for k, v in (base | times | claims).items() if k != drop}
    return jwt.encode(payload, KEY, algorithm="HS256")


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def with_claims(token: str, **changes: Any) -> str:
    """The token with its claims edited and its old signature kept."""
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    return ".".join([header, b64(json.dumps(claims | changes).encode()), signature])


def flip_last_signature_char(token: str) -> str:
    head, _, signature = token.rpartition(".")
    return f"{head}.{signature[:-2]}{'A' if signature[-2] != 'A' else 'B'}{signature[-1]}"


def unsigned(token: str) -> str:
    _, payload, _ = token.split(".")
    return ".".join([b64(b'{"alg":"none","typ":"JWT"}'), payload, ""])


@pytest.mark.parametrize("audience", list(Audience))
@pytest.mark.parametrize(("jurisdiction", "jur"), [("510104", "510104"), ("510100", "5101")])
def test_mint_and_verify_round_trip(audience: Audience, jurisdiction: str, jur: str) -> None:
    token = mint(jurisdiction=jurisdiction, audience=audience, session="s-1")
    claims = verify_token(KEY, token, audience)
    assert claims == Claims(
        sub="wang.wu",
        role=Role.OFFICIAL,
        jur=jur,
        aud=audience,
        iat=int(NOW.timestamp()),
        exp=int((NOW + HOUR).timestamp()),
        iss=ISSUER,
        sid="s-1",
    )


def test_a_token_without_session_has_no_sid() -> None:
    token = mint()
    assert "sid" not in jwt.decode(token, options={"verify_signature": False})
    assert verify_token(KEY, token, Audience.API).sid is None


def test_an_expired_token_is_refused() -> None:
    token = mint(now=NOW - 2 * HOUR)
    with pytest.raises(InvalidToken, match="expired"):
        verify_token(KEY, token, Audience.API)


def test_the_wrong_audience_is_refused() -> None:
    with pytest.raises(InvalidToken, match="audience 'signaling'"):
        verify_token(KEY, mint(audience=Audience.API), Audience.SIGNALING)


TAMPERINGS: list[tuple[str, Callable[[str], str]]] = [
    ("role-raised", lambda t: with_claims(t, role="admin")),
    ("jurisdiction-widened", lambda t: with_claims(t, jur="51")),
    ("expiry-extended", lambda t: with_claims(t, exp=int((NOW + 100 * HOUR).timestamp()))),
    ("signature-edited", flip_last_signature_char),
    ("signature-dropped", lambda t: t.rpartition(".")[0] + "."),
    ("alg-none", unsigned),
    ("truncated", lambda t: t[: len(t) // 2]),
    ("garbage", lambda t: "not.a.token"),
    ("empty", lambda t: ""),
]


@pytest.mark.parametrize("tamper", [f for _, f in TAMPERINGS], ids=[n for n, _ in TAMPERINGS])
def test_a_tampered_token_is_refused(tamper: Callable[[str], str]) -> None:
    token = mint()
    tampered = tamper(token)
    assert tampered != token
    with pytest.raises(InvalidToken):
        verify_token(KEY, tampered, Audience.API)


def test_a_token_signed_with_another_key_is_refused() -> None:
    token = mint_token(
        OTHER_KEY,
        sub="wang.wu",
        role=Role.OFFICIAL,
        jurisdiction="510104",
        audience=Audience.API,
        ttl=HOUR,
    )
    with pytest.raises(InvalidToken, match="rejected"):
        verify_token(KEY, token, Audience.API)


@pytest.mark.parametrize(
    ("claims", "why"),
    [
        ({"iss": "someone-else"}, "rejected"),
        ({"jur": "5100"}, "claims invalid"),
        ({"role": "superuser"}, "claims invalid"),
        ({"sub": ""}, "claims invalid"),
        ({"extra": 1}, "claims invalid"),
        ({"aud": ["api", "console"]}, "claims invalid"),
    ],
    ids=["issuer", "jurisdiction", "role", "empty-sub", "extra-claim", "audience-list"],
)
def test_a_correctly_signed_token_with_bad_claims_is_refused(
    claims: dict[str, Any], why: str
) -> None:
    with pytest.raises(InvalidToken, match=why):
        verify_token(KEY, sign(claims), Audience.API)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "aud", "iss"])
def test_a_token_missing_a_required_claim_is_refused(missing: str) -> None:
    with pytest.raises(InvalidToken):
        verify_token(KEY, sign({}, drop=missing), Audience.API)


def test_a_correctly_signed_foreign_token_verifies() -> None:
    assert verify_token(KEY, sign({}), Audience.API).role is Role.ADMIN


def test_minting_refuses_an_invalid_jurisdiction() -> None:
    with pytest.raises(ValueError, match="jur"):
        mint(jurisdiction="51x")


def test_role_labels() -> None:
    assert {r.value: r.label_zh for r in Role} == {
        "admin": "管理员",
        "official": "接访领导",
        "monitor": "督查",
        "trainer": "培训讲师",
        "petition_office": "信访部门",
        "unit": "责任单位",
        "box": "接访终端",
    }


@pytest.mark.parametrize(
    ("jurisdiction", "division", "covered"),
    [
        ("510104", "510104021", True),  # a township of the county
        ("510104", "510104", True),  # the county itself
        ("510104", "510105021", False),  # another county's township
        ("510100", "510104021", True),  # the city covers its counties' townships
        ("51", "510104021", True),
        ("510104", None, False),  # a box that never told its township
    ],
)
def test_claims_cover_their_jurisdiction_only(
    jurisdiction: str, division: str | None, covered: bool
) -> None:
    claims = verify_token(KEY, mint(jurisdiction=jurisdiction), Audience.API)
    assert claims.covers(division) is covered
