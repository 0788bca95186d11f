"""Identifier normalisers: turn what channels send into one canonical value, or refuse it."""

from __future__ import annotations

from enum import StrEnum

import phonenumbers

from omnid.errors import OmnidError


class IdentifierRejection(StrEnum):
    """Why one identifier of an event was not used (the event may still be usable)."""

    UNKNOWN_TYPE = "unknown_type"
    BLOCKED = "blocked"
    UNPARSEABLE = "unparseable"
    TOO_LONG = "too_long"
    EMPTY = "empty"


class RejectedIdentifier(OmnidError):
    """An identifier value omnid will not link on. `detail` never contains the value itself."""

    def __init__(self, reason: IdentifierRejection, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class Normaliser(StrEnum):
    TRIM = "trim"
    LOWERCASE = "lowercase"
    UPPERCASE = "uppercase"
    EMAIL = "email"
    PHONE = "phone"


def normalise_email(raw: str, folding_providers: frozenset[str]) -> str:
    """Trim and lowercase; for opted-in providers drop dots and `+tag` from the local part,
    because those providers deliver `a.nn+shop@` and `ann@` to the same mailbox."""
    value = raw.strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or " " in value or domain.startswith("."):
        raise RejectedIdentifier(IdentifierRejection.UNPARSEABLE, "not an email address")
    if domain in folding_providers:
        local = local.split("+", 1)[0].replace(".", "")
        if not local:
            raise RejectedIdentifier(IdentifierRejection.UNPARSEABLE, "empty email local part")
    return f"{local}@{domain}"


def normalise_phone(raw: str, default_region: str) -> str:
    """E.164 (`+447700900123`); numbers without a country code use the rules' default region."""
    try:
        number = phonenumbers.parse(raw.strip(), default_region)
    except phonenumbers.NumberParseException as error:
        raise RejectedIdentifier(
            IdentifierRejection.UNPARSEABLE, f"not a phone number ({error.error_type})"
        ) from None
    if not phonenumbers.is_valid_number(number):
        raise RejectedIdentifier(IdentifierRejection.UNPARSEABLE, "not a valid phone number")
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def apply_normaliser(
    normaliser: Normaliser, raw: str, default_region: str, folding_providers: frozenset[str]
) -> str:
    if normaliser is Normaliser.EMAIL:
        return normalise_email(raw, folding_providers)
    if normaliser is Normaliser.PHONE:
        return normalise_phone(raw, default_region)
    value = raw.strip()
    if normaliser is Normaliser.LOWERCASE:
        return value.lower()
    if normaliser is Normaliser.UPPERCASE:
        return value.upper()
    return value
