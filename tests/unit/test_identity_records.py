"""Records: every command and state survives to_record -> JSON -> from_record unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnid.errors import InvalidEvent
from omnid.identity.commands import Command
from omnid.identity.model import Event, Identifier, Purchase
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.records import from_record, to_record
from omnid.identity.rules import IdentityRules
from omnid.identity.simulator import Simulator
from omnid.identity.state import IdentifierState, ProfileState

RULES = IdentityRules.model_validate(
    {
        **IdentityRules.load().model_dump(),
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


def roundtrip(obj: Any) -> Any:
    return from_record(json.loads(json.dumps(to_record(obj))))


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
        record = to_record(obj)
        kinds.add(record["kind"])
        assert roundtrip(obj) == obj, record["kind"]
    assert {"Resolve", "Apply", "IdentifierState", "ProfileState"} <= kinds


def test_unknown_kinds_are_refused() -> None:
    with pytest.raises(InvalidEvent):
        from_record({"kind": "Teleport", "profile_id": "p"})
    with pytest.raises(TypeError):
        to_record(object())
