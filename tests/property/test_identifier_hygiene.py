"""Identifier hygiene: control and invisible characters, Unicode forms, look-alike scripts and
length bounds, for the findings of issue 15 and as properties over arbitrary text."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omnid.identity.intake import commands_for_event
from omnid.identity.model import Event, Identifier
from omnid.identity.normalisers import EMAIL_LOCAL_MAX_BYTES, IdentifierRejection
from omnid.identity.rules import RejectedIdentifier, normalise
from omnid.rules_file import load_rules

RULES = load_rules()
TYPES = sorted(RULES.identifier_types)
ZERO_WIDTH_SPACE, RIGHT_TO_LEFT_OVERRIDE, BOM = "\u200b", "\u202e", "\ufeff"
CYRILLIC_A = "\u0430"
INVISIBLES = st.sampled_from(["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"])
INVISIBLES |= st.sampled_from(["\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066"])
CONTROLS = st.sampled_from(["\x00", "\x07", "\x1b", "\x7f", "\x85", "\u2028"])
ASCII_WORDS = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789", min_size=3, max_size=12)


def rejection(identifier_type: str, raw: str) -> IdentifierRejection:
    with pytest.raises(RejectedIdentifier) as refused:
        normalise(RULES, identifier_type, raw)
    return refused.value.reason


def _insert(value: str, char: str, at: int) -> str:
    at = at % (len(value) + 1)
    return value[:at] + char + value[at:]


# -- the findings -------------------------------------------------------------------------------


def test_a_nul_inside_a_user_id_is_refused_not_a_second_identity() -> None:
    assert rejection("user_id", "u-1\x00") == IdentifierRejection.CONTROL_CHARACTER
    assert rejection("user_id", "u\x00-1") == IdentifierRejection.CONTROL_CHARACTER


def test_an_email_with_a_zero_width_space_is_refused() -> None:
    raw = f"ann{ZERO_WIDTH_SPACE}@shop.io"
    assert rejection("email", raw) == IdentifierRejection.INVISIBLE_CHARACTER


def test_an_email_with_a_cyrillic_look_alike_letter_is_refused_as_confusable() -> None:
    assert rejection("email", f"ann@{CYRILLIC_A}mazon.com") == IdentifierRejection.CONFUSABLE
    assert rejection("email", f"{CYRILLIC_A}nn@shop.io") == IdentifierRejection.CONFUSABLE


def test_an_email_written_only_in_latin_look_alikes_is_confusable_also_as_punycode() -> None:
    cyrillic_apple = "\u0430\u0440\u0440\u04cf\u0435"
    assert rejection("email", f"ann@{cyrillic_apple}.com") == IdentifierRejection.CONFUSABLE
    assert rejection("email", "ann@xn--80ak6aa92e.com") == IdentifierRejection.CONFUSABLE


def test_an_email_starting_with_a_right_to_left_override_is_refused() -> None:
    raw = f"{RIGHT_TO_LEFT_OVERRIDE}moc.pohs@nna"
    assert rejection("email", raw) == IdentifierRejection.INVISIBLE_CHARACTER


def test_single_script_and_cjk_mixed_addresses_are_kept() -> None:
    russian = "\u0438\u0432\u0430\u043d@\u043f\u043e\u0447\u0442\u0430.\u0440\u0444"
    japanese = "\u7530\u4e2d\u305f\u306a\u304b@\u4f8b\u3048.jp"
    for raw in (russian, japanese, "jos\u00e9@caf\u00e9.fr"):
        assert normalise(RULES, "email", raw).value == raw


def test_fullwidth_email_is_the_same_address_after_nfkc() -> None:
    fullwidth = "".join(chr(ord(c) + 0xFEE0) for c in "ann@shop.io")
    assert normalise(RULES, "email", fullwidth) == normalise(RULES, "email", "ann@shop.io")


def test_a_bom_from_a_csv_export_is_stripped_from_opaque_ids() -> None:
    assert normalise(RULES, "pos_customer_id", f"{BOM}C-501").value == "C-501"


def test_email_length_follows_rfc_5321() -> None:
    local = "a" * (EMAIL_LOCAL_MAX_BYTES + 1)
    assert rejection("email", f"{local}@shop.io") == IdentifierRejection.TOO_LONG


def test_an_event_keeps_its_clean_identifiers_and_counts_the_refused_ones() -> None:
    event = Event(
        "e1", "web", "test", "identify", 5, 9,
        (Identifier("user_id", "u\x00-1"), Identifier("email", f"ann{ZERO_WIDTH_SPACE}@shop.io"),
         Identifier("email", "ann@shop.io")),
    )  # fmt: skip
    intake = commands_for_event(RULES, event)
    (resolve,) = intake.commands
    assert [i.key for i in resolve.event.identifiers] == ["email:ann@shop.io"]
    assert sorted(r.reason for r in intake.rejected) == [
        IdentifierRejection.CONTROL_CHARACTER,
        IdentifierRejection.INVISIBLE_CHARACTER,
    ]


# -- properties ---------------------------------------------------------------------------------


@given(st.sampled_from(TYPES), st.text(max_size=80))
def test_any_text_is_a_clean_identifier_or_a_rejection_never_a_crash(
    identifier_type: str, raw: str
) -> None:
    try:
        value = normalise(RULES, identifier_type, raw).value
    except RejectedIdentifier as refused:
        assert refused.reason in IdentifierRejection
        return
    rule = RULES.identifier_types[identifier_type]
    assert len(value) <= rule.max_length
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Cs", "Co", "Cn") for c in value)
    # Normalising a normalised value changes nothing (hashed types aside: none by default).
    assert normalise(RULES, identifier_type, value).value == value


@given(st.sampled_from(["user_id", "crm_id", "pos_customer_id", "anonymous_id"]), ASCII_WORDS,
       INVISIBLES, st.integers())  # fmt: skip
def test_an_invisible_character_in_an_opaque_id_finds_the_same_identity(
    identifier_type: str, value: str, invisible: str, at: int
) -> None:
    clean = normalise(RULES, identifier_type, f"id-{value}")
    assert normalise(RULES, identifier_type, _insert(f"id-{value}", invisible, at)) == clean


@given(ASCII_WORDS, ASCII_WORDS, INVISIBLES, st.integers())
def test_an_invisible_character_anywhere_in_an_email_is_refused(
    local: str, domain: str, invisible: str, at: int
) -> None:
    raw = _insert(f"{local}@{domain}.io", invisible, at)
    if raw.strip() != raw:  # leading/trailing: trimmed like whitespace, only if Unicode says so
        return
    assert rejection("email", raw) == IdentifierRejection.INVISIBLE_CHARACTER


@given(st.sampled_from(TYPES), ASCII_WORDS, CONTROLS, st.integers(min_value=1))
def test_a_control_character_inside_any_identifier_is_refused(
    identifier_type: str, value: str, control: str, at: int
) -> None:
    raw = f"id{value}"
    at = 1 + at % (len(raw) - 1)  # strictly inside: trimming never removes it
    assert rejection(identifier_type, raw[:at] + control + raw[at:]) in (
        IdentifierRejection.CONTROL_CHARACTER,
        IdentifierRejection.UNPARSEABLE,  # a phone or email parser may refuse it first
    )


LOOKALIKES = {"a": "\u0430", "e": "\u0435", "o": "\u043e", "p": "\u0440", "c": "\u0441"}


@given(st.text(alphabet="aeopcxyz", min_size=3, max_size=10), st.data())
def test_one_cyrillic_look_alike_in_a_latin_email_is_confusable(
    word: str, data: st.DataObject
) -> None:
    swappable = [i for i, c in enumerate(word) if c in LOOKALIKES]
    if not swappable:
        return
    i = data.draw(st.sampled_from(swappable))
    spoofed = word[:i] + LOOKALIKES[word[i]] + word[i + 1 :]
    assert rejection("email", f"ann@{spoofed}x.com") == IdentifierRejection.CONFUSABLE
