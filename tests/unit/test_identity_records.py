"""Records: every command and state survives encode -> decode unchanged; version 0 still reads."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnid.errors import InvalidEvent
from omnid.identity import records
from omnid.identity.commands import Command
from omnid.identity.model import Event, Identifier, Purchase, event_digest
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.rules import IdentityRules
from omnid.identity.simulator import Simulator
from omnid.identity.state import IdentifierState, ProfileState, ProfileStatus
from omnid.rules_file import load_rules

RULES = IdentityRules.model_validate(
    {
        **load_rules().model_dump(),
        "identifier_types": {
            "email": {"normaliser": "email", "priority": 60, "limit": 1},
            "anonymous_id": {"normaliser": "trim", "priority": 10, "limit": 2},
        },
    }
)
ids = st.sampled_from(
    [Identifier("email", e) for e in ("a@x.io", "b@x.io")]
    + [Identifier("anonymous_id", a) for a in ("k1", "k2", "k3")]
)


@st.composite
def events(draw: st.DrawFn) -> list[Event]:
    return [
        Event(
            f"e{n}",
            draw(st.sampled_from(["web", "pos"])),
            "test",
            "track",
            n,
            n + 1,
            tuple(draw(st.lists(ids, min_size=1, max_size=3))),
            draw(st.dictionaries(st.sampled_from(["name"]), st.one_of(st.none(), st.floats(0, 1)))),
            {"page": "/"},
            draw(st.none() | st.just(Purchase("o1", 2.5, "EUR"))),
        )
        for n in range(draw(st.integers(1, 8)))
    ]


VERSION_0 = Path(__file__).parent / "data" / "records-v0.jsonl"


def roundtrip(obj: Any) -> Any:
    return records.decode(records.encode(obj))


@settings(max_examples=60, deadline=None)
@given(stream=events(), seed=st.integers(0, 1000))
def test_every_command_and_state_of_a_run_round_trips(stream: list[Event], seed: int) -> None:
    seen: list[Command | IdentifierState | ProfileState] = []
    import omnid.identity.simulator as simulator_module

    def recording_identifier(rules: IdentityRules, state: Any, command: Any) -> Any:
        seen.append(command)
        new_state, outputs = handle_identifier(rules, state, command)
        if new_state is not None:
            seen.append(new_state)
        return new_state, outputs

    def recording_profile(rules: IdentityRules, state: Any, command: Any) -> Any:
        seen.append(command)
        new_state, outputs = handle_profile(rules, state, command)
        if new_state is not None:
            seen.append(new_state)
        return new_state, outputs

    patch = pytest.MonkeyPatch()
    patch.setattr(simulator_module, "handle_identifier", recording_identifier)
    patch.setattr(simulator_module, "handle_profile", recording_profile)
    try:
        Simulator(RULES, 3, seed).run(stream)
    finally:
        patch.undo()
    kinds = set()
    for obj in seen:
        kinds.add(type(obj).__name__)
        assert roundtrip(obj) == obj, type(obj).__name__
    assert {"Resolve", "Found", "IdentifierState", "ProfileState"} <= kinds


def test_records_written_by_version_0_still_read() -> None:
    """A rolling upgrade reads what the previous release wrote (tagged JSON, full event ids);
    the lines were written by that release's encoder."""
    lines = VERSION_0.read_text().splitlines()
    kinds = set()
    for line in lines:
        legacy = json.loads(line)
        decoded = records.decode(line.encode())
        kinds.add(type(decoded).__name__)
        assert type(decoded).__name__ == legacy["kind"]
        assert roundtrip(decoded) == decoded
        if isinstance(decoded, ProfileState):
            assert decoded.applied == {event_digest(e): c for e, c in legacy["applied"].items()}
            assert set(decoded.identifiers) == set(legacy["identifiers"])
            assert decoded.event_count == legacy["event_count"]
            assert decoded.status is ProfileStatus(legacy["status"])
        if isinstance(decoded, IdentifierState):
            assert set(decoded.recent_events) == {event_digest(e) for e in legacy["recent_events"]}
            assert decoded.owner == legacy["owner"]
    assert {"Resolve", "Apply", "Absorb", "IdentifierState", "ProfileState"} <= kinds


def test_a_field_added_later_reads_as_its_default_and_defaults_are_not_stored() -> None:
    state = IdentifierState(Identifier("email", "a@x.io"), owner="01P")
    encoded = records.encode(state)
    assert b"refused_by" not in encoded and b"epoch" not in encoded
    assert records.decode(encoded) == state


def test_an_identifier_state_stored_under_its_key_leaves_the_identifier_to_the_key() -> None:
    identifier = Identifier("email", "a:b@x.io")  # a colon in the value stays in the value
    state = IdentifierState(identifier, owner="01P", first_seen=3)
    whole, keyed = records.encode(state), records.encode(state, identifier.key)
    assert len(keyed) < len(whole) and b"a:b@x.io" not in keyed
    assert records.decode(keyed, identifier.key) == state
    # Records written whole (before this encoding) read the same, with or without the key.
    assert records.decode(whole, identifier.key) == records.decode(whole) == state
    with pytest.raises(InvalidEvent, match="table key"):
        records.decode(keyed)
    # A state stored under another key keeps its identifier.
    assert records.decode(records.encode(state, "email:other@x.io")) == state


def test_unknown_kinds_versions_and_bytes_are_refused() -> None:
    for payload in (
        b'{"kind": "Teleport", "profile_id": "p"}',
        b"\x01\xfe\x80",
        b"\x07junk",
        b"",
        b"\x01\x0d\xc1",
    ):
        with pytest.raises(InvalidEvent):
            records.decode(payload)
    with pytest.raises(TypeError):
        records.encode(object())
