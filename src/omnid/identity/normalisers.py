"""Identifier normalisers: turn what channels send into one canonical value, or refuse it."""

from __future__ import annotations

import unicodedata
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
    CONTROL_CHARACTER = "control_character"
    INVISIBLE_CHARACTER = "invisible_character"
    CONFUSABLE = "confusable"


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


# Unicode general categories no identifier needs: controls (NUL, escapes), format characters
# (zero-width space and joiners, BOM, soft hyphen, bidi overrides), line and paragraph
# separators, surrogates, private use and unassigned code points. Leading and trailing
# whitespace is trimmed before this is checked.
_CONTROL = frozenset({"Cc", "Zl", "Zp"})
_INVISIBLE = frozenset({"Cf", "Cs", "Co", "Cn"})
# Humans type emails and phone numbers: fullwidth forms from an IME are the same address, so
# those are NFKC-normalised. Opaque ids from other systems only get NFC (canonically equivalent
# text is the same text; compatibility folding could merge ids a system keeps apart).
_HUMAN_TYPED = frozenset({Normaliser.EMAIL, Normaliser.PHONE})
EMAIL_MAX_BYTES = 254  # RFC 5321: a path of 256 octets less the angle brackets
EMAIL_LOCAL_MAX_BYTES = 64

# Scripts an email label may mix (UTS #39 "highly restrictive"): a Japanese, Chinese or Korean
# address legitimately mixes Han with kana or Hangul, and Latin with any of those.
_ALLOWED_MIXES = (
    frozenset({"LATIN", "CJK", "HIRAGANA", "KATAKANA"}),
    frozenset({"LATIN", "CJK", "BOPOMOFO"}),
    frozenset({"LATIN", "CJK", "HANGUL"}),
)
# Lowercase letters of other scripts that render like Latin ones (a c e h i j l o p q s w x y d
# in Cyrillic; a e i k v o p u x c in Greek; o u h n q g in Armenian): a label made only of these,
# digits and hyphens displays as a Latin word it is not (Cyrillic "apple"). Values are
# lowercased before the check.
_LATIN_LOOKALIKES = frozenset(
    "\u0430\u0441\u0435\u04bb\u0456\u0458\u04cf\u043e"  # Cyrillic
    "\u0440\u051b\u0455\u051d\u0445\u0443\u0501"
    "\u03b1\u03b5\u03b9\u03ba\u03bd\u03bf\u03c1\u03c5\u03c7\u03f2"  # Greek
    "\u0585\u057d\u0570\u0578\u0566\u0581"  # Armenian
)


def clean_text(raw: str, normaliser: Normaliser) -> str:
    """`raw` trimmed and Unicode-normalised for its normaliser, or RejectedIdentifier.

    Control characters are always refused. Invisible (format) characters are refused in
    emails and phone numbers, where one turns an address into a look-alike of someone else's,
    and stripped from opaque ids, where they are copy-paste debris (a BOM from a CSV export)."""
    value = raw.strip()
    human = normaliser in _HUMAN_TYPED
    value = unicodedata.normalize("NFKC" if human else "NFC", value)
    if value.isascii():
        if not value.isprintable():
            raise RejectedIdentifier(IdentifierRejection.CONTROL_CHARACTER, "control character")
        return value
    kept = []
    for char in value:
        category = unicodedata.category(char)
        if category in _CONTROL:
            raise RejectedIdentifier(IdentifierRejection.CONTROL_CHARACTER, "control character")
        if category in _INVISIBLE:
            if human:
                raise RejectedIdentifier(
                    IdentifierRejection.INVISIBLE_CHARACTER, "invisible or format character"
                )
            continue
        kept.append(char)
    return "".join(kept).strip()


def _script(char: str) -> str | None:
    """The script of a letter, from its Unicode name (LATIN SMALL LETTER A -> LATIN); None for
    digits, punctuation and symbols, which every script shares."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return "CJK" if name.startswith("CJK") else name.partition(" ")[0] or None


def check_confusable(label: str) -> None:
    """Refuse a label that mixes scripts beyond the allowed mixes (Latin with a Cyrillic
    look-alike letter), or that is made entirely of letters that look Latin but are not."""
    if label.isascii():
        return
    scripts = {script for char in label if (script := _script(char)) is not None}
    if len(scripts) > 1 and not any(scripts <= allowed for allowed in _ALLOWED_MIXES):
        raise RejectedIdentifier(
            IdentifierRejection.CONFUSABLE, f"mixes scripts ({', '.join(sorted(scripts))})"
        )
    letters = [char for char in label if _script(char) is not None]
    if letters and "LATIN" not in scripts and all(c in _LATIN_LOOKALIKES for c in letters):
        raise RejectedIdentifier(
            IdentifierRejection.CONFUSABLE, "only letters that look like Latin ones"
        )


def _unicode_label(label: str) -> str:
    if label.startswith("xn--"):
        try:
            return label[4:].encode("ascii").decode("punycode")
        except (UnicodeError, ValueError):
            raise RejectedIdentifier(
                IdentifierRejection.UNPARSEABLE, "invalid punycode domain label"
            ) from None
    return label


def normalise_email(raw: str, folding_providers: frozenset[str]) -> str:
    """Trim and lowercase; for opted-in providers drop dots and `+tag` from the local part,
    because those providers deliver `a.nn+shop@` and `ann@` to the same mailbox. Local part
    and every domain label must each be written in one script (see check_confusable)."""
    value = raw.strip().lower()
    if value.startswith("mailto:"):
        value = value[len("mailto:") :]
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or " " in value or domain.startswith("."):
        raise RejectedIdentifier(IdentifierRejection.UNPARSEABLE, "not an email address")
    if len(value.encode()) > EMAIL_MAX_BYTES or len(local.encode()) > EMAIL_LOCAL_MAX_BYTES:
        raise RejectedIdentifier(
            IdentifierRejection.TOO_LONG,
            f"an email has at most {EMAIL_LOCAL_MAX_BYTES} bytes before the @ and "
            f"{EMAIL_MAX_BYTES} in all",
        )
    check_confusable(local)
    for label in domain.split("."):
        check_confusable(_unicode_label(label))
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
