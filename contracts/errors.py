"""Errors raised by the contracts: each says what was wrong and with which value."""

from __future__ import annotations


class ContractError(ValueError):
    """Base class: a value does not meet a wire contract or a domain rule."""

    code = "invalid"


class InvalidTopic(ContractError):
    """A topic or topic segment is not one this protocol defines."""

    code = "invalid_topic"


class InvalidNodeId(ContractError):
    """A box (node) id has characters or a length the topics cannot carry."""

    code = "invalid_node_id"


class MalformedMessage(ContractError):
    """A payload is not valid JSON, too large, or not of the expected schema."""

    code = "malformed_message"


class InvalidIdNumber(ContractError):
    """A resident ID number (GB 11643) fails a check; ``code`` names which."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class InvalidDivisionCode(ContractError):
    """A division code (GB/T 2260 or statistical) has the wrong shape."""

    code = "invalid_division_code"


class InvalidPhone(ContractError):
    """A mainland mobile number has the wrong shape."""

    code = "invalid_phone"


class ChainError(ContractError):
    """A hash chain record cannot be sealed or checked (missing or bad fields)."""

    code = "chain_error"


class InvalidToken(ContractError):
    """An access token is missing, expired, badly signed or of the wrong audience."""

    code = "invalid_token"
