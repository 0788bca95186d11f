"""Identity rules: loading and validation errors, normalisers, the blocklist, hashing, intake."""

from __future__ import annotations

import dataclasses
import datetime as dt
import weakref
from pathlib import Path

import pytest

from omnid.config import DEFAULT_RULES_FILE
from omnid.errors import ConfigError, InvalidEvent, RejectionReason
from omnid.identity.intake import commands_for_event
from omnid.identity.model import ConsentChange, Event, Identifier, Purchase, event_from_record
from omnid.identity.normalisers import IdentifierRejection, RejectedIdentifier
from omnid.identity.rules import NormalisationCache, normalise
from omnid.rules_file import load_rules

RULES = load_rules()
MINIMAL = """\
version: 1
identifier_types:
  email:
    normaliser: email
    priority: 10
    limit: 3
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return path


def test_default_rules_file_has_the_documented_limits() -> None:
    assert DEFAULT_RULES_FILE.name == "identity-rules.yaml"
    assert {t: RULES.limit(t) for t in RULES.identifier_types} == {
        "user_id": 1,
        "crm_id": 1,
        "loyalty_id": 3,
        "pos_customer_id": 3,
        "email": 5,
        "phone": 3,
        "device_id": 10,
        "anonymous_id": 100,
    }
    assert (
        RULES.source_priority("crm") > RULES.source_priority("pos") > RULES.source_priority("web")
    )
    assert RULES.source_priority("carrier-pigeon") == 0
    assert RULES.weak_types == {"device_id", "anonymous_id"}
    assert not RULES.without_limits().weak_types and not RULES.without_limits().limits


def test_unknown_normaliser_names_the_file_the_line_and_the_field(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("normaliser: email", "normaliser: emial"))
    with pytest.raises(ConfigError) as caught:
        load_rules(path)
    message = str(caught.value)
    assert f"{path}:4:" in message
    assert "identifier_types.email.normaliser" in message


def test_yaml_syntax_error_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "  phone: [unclosed\n")
    with pytest.raises(ConfigError, match=rf"{path}:\d+: not valid YAML"):
        load_rules(path)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (("limit: 3", "limit: 0"), "limit must be at least 1"),
        (("priority: 10", "priority: high"), "priority"),
        (("version: 1", "version: 2"), "version"),
        (("    limit: 3", "    limit: 3\n    blocked: {regex: ['(']}"), "does not compile"),
        (("version: 1", "version: 1\ndefault_region: XX"), "not a region"),
        (("version: 1", "version: 1\nsurprise: true"), "surprise"),
        (("    limit: 3", "    limit: 3\n    strength: flimsy"), "strength"),
        (
            (
                "    limit: 3",
                "    limit: 3\n  device_id: {normaliser: trim, priority: 20, strength: weak}",
            ),
            "weak type 'device_id' .* lower priority than every strong type",
        ),
    ],
)
def test_invalid_rules_fail_with_what_is_wrong(
    tmp_path: Path, change: tuple[str, str], problem: str
) -> None:
    path = write(tmp_path, MINIMAL.replace(*change))
    with pytest.raises(ConfigError, match=problem):
        load_rules(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_rules(tmp_path / "absent.yaml")


@pytest.mark.parametrize(
    ("identifier_type", "raw"),
    [
        ("user_id", "null"),
        ("user_id", '"null"'),
        ("user_id", "'undefined'"),
        ("user_id", "None"),
        ("user_id", "NaN"),
        ("user_id", "0"),
        ("user_id", "-1"),
        ("user_id", "guest"),
        ("user_id", "[object Object]"),
        ("user_id", "true"),
        ("user_id", "   "),
        ("user_id", ""),
        ("device_id", "0000-0000"),
        ("device_id", "----"),
        ("crm_id", "n/a"),
        ("email", "test@test.com"),
        ("email", "noreply@shop.io"),
        ("email", "anything@example.com"),
        ("email", '"NULL"'),
        ("phone", "0000000000"),
    ],
)
def test_junk_values_are_refused(identifier_type: str, raw: str) -> None:
    with pytest.raises(RejectedIdentifier) as caught:
        normalise(RULES, identifier_type, raw)
    assert caught.value.reason in (IdentifierRejection.BLOCKED, IdentifierRejection.EMPTY)
    assert raw.strip() == "" or raw not in str(caught.value)  # no personal data in messages


@pytest.mark.parametrize(
    ("identifier_type", "raw", "value"),
    [
        ("email", "  Ann.Smith+shop@Gmail.COM ", "ann.smith+shop@gmail.com"),
        ("phone", "07911 123456", "+447911123456"),
        ("phone", "+1 (415) 555-2671", "+14155552671"),
        ("loyalty_id", " ab-123 ", "AB-123"),
        ("device_id", " IDFA-ABC ", "idfa-abc"),
        ("user_id", " Ann-42 ", "Ann-42"),
        ("user_id", "nullable-user", "nullable-user"),
    ],
)
def test_normalisers(identifier_type: str, raw: str, value: str) -> None:
    assert normalise(RULES, identifier_type, raw) == Identifier(identifier_type, value)


@pytest.mark.parametrize("raw", ["not-a-number", "12", "+44 1", "call me"])
def test_unparseable_phone_is_rejected_with_a_reason_not_a_crash(raw: str) -> None:
    with pytest.raises(RejectedIdentifier) as caught:
        normalise(RULES, "phone", raw)
    assert caught.value.reason is IdentifierRejection.UNPARSEABLE


def test_unknown_type_and_overlong_values_are_rejected() -> None:
    with pytest.raises(RejectedIdentifier) as caught:
        normalise(RULES, "shoe_size", "42")
    assert caught.value.reason is IdentifierRejection.UNKNOWN_TYPE
    with pytest.raises(RejectedIdentifier) as caught:
        normalise(RULES, "user_id", "x" * 1000)
    assert caught.value.reason is IdentifierRejection.TOO_LONG


def test_email_folding_is_opt_in_per_provider(tmp_path: Path) -> None:
    folding = load_rules(write(tmp_path, MINIMAL + "email_folding_providers: [gmail.com]\n"))
    assert normalise(folding, "email", "A.nn+shop@gmail.com").value == "ann@gmail.com"
    assert normalise(folding, "email", "A.nn+shop@work.io").value == "a.nn+shop@work.io"


def test_hashed_types_store_an_hmac_and_need_a_secret(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL.replace("limit: 3", "limit: 3\n    hashed: true"))
    with pytest.raises(ConfigError, match="hash secret"):
        load_rules(path)
    rules = load_rules(path, hash_secret="s3cret")
    hashed = normalise(rules, "email", " Ann@Shop.io ")
    assert hashed == normalise(rules, "email", "ann@shop.io")
    assert len(hashed.value) == 64 and "ann" not in hashed.value
    other = load_rules(path, hash_secret="another")
    assert normalise(other, "email", "ann@shop.io") != hashed


def _event(*identifiers: tuple[str, str]) -> Event:
    return Event(
        "e1", "web", "test", "track", 5, 9, tuple(Identifier(t, v) for t, v in identifiers)
    )


def test_intake_orders_identifiers_by_priority_and_drops_duplicates_and_junk() -> None:
    intake = commands_for_event(
        RULES,
        _event(
            ("anonymous_id", "k1"),
            ("email", "ANN@shop.io"),
            ("user_id", "u1"),
            ("email", "ann@shop.io"),
            ("email", "test@test.com"),
        ),
    )
    (resolve,) = intake.commands
    assert [i.key for i in resolve.event.identifiers] == [
        "user_id:u1",
        "email:ann@shop.io",
        "anonymous_id:k1",
    ]
    assert resolve.key == "user_id:u1"
    assert [r.reason for r in intake.rejected] == [IdentifierRejection.BLOCKED]


def test_intake_refuses_an_event_without_a_usable_identifier() -> None:
    with pytest.raises(InvalidEvent) as caught:
        commands_for_event(RULES, _event(("user_id", "null"), ("email", "not an email")))
    assert caught.value.reason is RejectionReason.NO_IDENTIFIER


def test_event_from_record_accepts_fastavro_datetimes_and_clamps_event_time() -> None:
    record = {
        "event_id": "e1",
        "channel": "web",
        "source": "shop",
        "event_type": "purchase",
        "occurred_at": dt.datetime(2024, 3, 1, 12, 0, 1, tzinfo=dt.UTC),
        "received_at": 1_709_294_400_000,
        "identifiers": [{"type": "email", "value": "ann@shop.io"}],
        "traits": {"name": "Ann", "age": 40},
        "properties": None,
        "purchase": {"order_id": "o1", "amount": 10, "currency": "GBP"},
        "consent": [{"purpose": "email", "granted": True}],
    }
    event = event_from_record(record)
    assert event.occurred_at == 1_709_294_401_000
    assert event.event_time == event.received_at == 1_709_294_400_000
    assert event.purchase is not None and event.purchase.amount == 10.0
    with pytest.raises(InvalidEvent):
        event_from_record({**record, "identifiers": "ann@shop.io"})


def test_intake_keeps_every_event_field_the_graph_reads() -> None:
    """Identifiers normalised; `properties` left behind (nothing in the core reads them, so
    no command or history row carries them)."""
    event = Event(
        "e7",
        "pos",
        "till-3",
        "purchase",
        5,
        9,
        (Identifier("email", " Ann@Shop.io "),),
        traits={"tier": "gold"},
        properties={"store": 3},
        purchase=Purchase("o1", 9.5, "GBP"),
        consent=(ConsentChange("email", True),),
    )
    normalised = commands_for_event(RULES, event).event
    assert normalised == dataclasses.replace(
        event, identifiers=(Identifier("email", "ann@shop.io"),), properties={}
    )


def test_normalisation_is_remembered_but_a_rejection_is_raised_every_time() -> None:
    cache = NormalisationCache(RULES)
    phone = cache.normalise("phone", "07911 123456")
    assert cache.normalise("phone", "07911 123456") is phone
    assert phone == normalise(RULES, "phone", "07911 123456")
    for _ in range(2):
        with pytest.raises(RejectedIdentifier, match="blocked"):
            cache.normalise("user_id", "null")


def test_a_remembered_rejection_keeps_nothing_of_its_callers_alive() -> None:
    # A worker's batch of consumed records sits in a caller's frame; the cache must not hold it.
    class Batch:
        pass

    cache = NormalisationCache(RULES)

    def handle(batch: Batch) -> None:
        for identifier_type, raw in (("user_id", "null"), ("phone", "no number here")):
            with pytest.raises(RejectedIdentifier):
                cache.normalise(identifier_type, raw)

    batch = Batch()
    alive = weakref.ref(batch)
    handle(batch)
    del batch
    assert alive() is None


def test_the_normalisation_cache_forgets_its_oldest_values_past_its_bound() -> None:
    cache = NormalisationCache(RULES, entries=2)
    first = cache.normalise("user_id", "u1")
    cache.normalise("user_id", "u2")
    assert cache.normalise("user_id", "u1") is first
    cache.normalise("user_id", "u3")  # u1 was the oldest entry
    assert cache.normalise("user_id", "u1") is not first


def test_a_copy_of_the_rules_derives_its_lookups_from_its_own_fields() -> None:
    loose = RULES.model_copy(update={"identifier_types": RULES.without_limits().identifier_types})
    assert RULES.limit("email") == 5 and loose.limit("email") is None
