"""Invariant 8 (ARCHITECTURE.md §5) over random events, partitions, interleavings and duplicates:
after erase(P) nothing reachable from P's identifiers or merged-away ids holds P's data, every
other profile equals what the same events without P give, and a replay recreates nothing."""

from __future__ import annotations

from typing import Any

from hypothesis import given, note
from hypothesis import strategies as st

from omnid.identity.commands import Claim, Command
from omnid.identity.intake import usable_identifiers
from omnid.identity.model import Event, Identifier
from omnid.identity.requests import PrivacyKind, PrivacyRequest
from omnid.identity.simulator import SimulationResult, Simulator
from omnid.identity.state import IdentifierState, IdentifierStatus, ProfileState, ProfileStatus
from omnid.rules_file import load_rules

from .graph_events import POOLS, event_lists

# Without limits: a limit refuses a link, and which side of a refused link an event lands on
# depends on timing, so "the person" would not be one set of identifiers. Weak types stay.
UNLIMITED = load_rules().without_limits()

delivery = st.fixed_dictionaries(
    {
        "partitions": st.integers(1, 12),
        "seed": st.integers(0, 2**32 - 1),
        "duplicate_rate": st.sampled_from([0.0, 0.15]),
    }
)
subjects = st.sampled_from([Identifier(t, v) for t, values in POOLS.items() for v in values])


def subject_of(data: st.DataObject, events: list[Event]) -> Identifier:
    """Mostly an identifier the events carry (so there is a person, often a merged one)."""
    seen = sorted({i for e in events for i in e.identifiers})
    choice = st.sampled_from(seen) if seen and data.draw(st.integers(0, 4)) else subjects
    return data.draw(choice, label="subject")


def erase(subject: Identifier) -> PrivacyRequest:
    return PrivacyRequest("r-erase", PrivacyKind.ERASE, subject, None, "test", None, 10_000)


def suppressed_keys(result: SimulationResult) -> set[str]:
    return {
        key
        for key, state in result.identifiers.items()
        if state.status is IdentifierStatus.SUPPRESSED
    }


def held_keys(profile: ProfileState) -> set[str]:
    return {*profile.identifiers, *profile.claimed, *profile.refused}


def check_nothing_of_the_person_remains(result: SimulationResult, erased_ids: set[str]) -> None:
    suppressed = suppressed_keys(result)
    for key in suppressed:
        marker = result.identifiers[key]
        assert marker.owner is None and not marker.recent_events, key
        assert not marker.refused_by and not marker.turned_away, key
    for profile_id in erased_ids:
        stub = result.profiles[profile_id]
        assert stub.status is ProfileStatus.ERASED, profile_id
        assert not (stub.identifiers or stub.claimed or stub.refused or stub.traits), profile_id
        assert not (stub.applied or stub.orders or stub.consent or stub.deferred), profile_id
        assert not (stub.history.events or stub.history.residue or stub.merges), profile_id
        assert stub.event_count == 0 and profile_id not in result.updates, profile_id
        assert profile_id in result.tombstoned, profile_id
    person_values = {key.split(":", 1)[1] for key in suppressed}
    for profile in result.profiles.values():
        leaked = held_keys(profile) & suppressed
        assert not leaked, f"{profile.profile_id} still holds {leaked}"
        kept = {i.key for e in profile.history.events.values() for i in e.identifiers}
        assert not kept & suppressed, f"{profile.profile_id} keeps events with {kept & suppressed}"
        bans = repr(profile.bans)  # re-link bans keep digests only, never a clear key
        assert not [v for v in person_values if f"'{v}'" in bans], profile.profile_id
    for profile_id, update in result.updates.items():
        keys = {f"{i['type']}:{i['value']}" for i in update["identifiers"]}
        assert not keys & suppressed, f"update of {profile_id} shows {keys & suppressed}"
    receipts = repr(result.receipts)
    assert not [v for v in person_values if f"'{v}'" in receipts], "a receipt names a value"


def without(events: list[Event], suppressed: set[str]) -> list[Event]:
    """The oracle's input: each event without the person's identifiers; dropped if nothing
    but weak identifiers is left (the rule the graph applies to a suppressed identifier)."""
    kept = []
    for event in events:
        usable, _ = usable_identifiers(UNLIMITED, event.identifiers)
        remaining = tuple(i for i in usable if i.key not in suppressed)
        if len(remaining) < len(usable) and all(i.type in UNLIMITED.weak_types for i in remaining):
            continue
        if remaining:
            kept.append(event.for_graph(remaining))
    return kept


def signature(profile: ProfileState) -> tuple[frozenset[str], Any]:
    return frozenset(profile.identifiers), (
        profile.event_count,
        sorted(((k, v.value) for k, v in profile.traits.items()), key=lambda kv: kv[0]),
        sorted(profile.orders),
        sorted((k, v.granted) for k, v in profile.consent.items()),
        dict(sorted(profile.channel_counts.items())),
    )


def signatures(result: SimulationResult) -> dict[frozenset[str], Any]:
    return dict(signature(p) for p in result.active_profiles().values())


@given(events=event_lists(), options=delivery, data=st.data())
def test_erase_at_a_random_point_then_replay_leaves_only_the_others_as_without_the_person(
    events: list[Event], options: dict[str, Any], data: st.DataObject
) -> None:
    point = data.draw(st.integers(0, len(events)), label="erase after this many events")
    subject = subject_of(data, events[:point])
    note(f"events: {[(e.event_id, [i.key for i in e.identifiers]) for e in events]}")
    simulator = Simulator(
        UNLIMITED, options["partitions"], options["seed"], duplicate_rate=options["duplicate_rate"]
    )
    before = simulator.run(events[:point])
    person = before.profile_of(subject.key)
    merged_away = {*person.merged_from, *person.absorbed} if person is not None else set()
    erased = simulator.run([erase(subject)], after=before)
    assert "r-erase:completed" in erased.receipts
    # Later events, and then a replay of the whole input, with duplicates and interleavings.
    after = simulator.run(events[point:] + events, after=erased)

    erased_ids = {p for p, s in after.profiles.items() if s.status is ProfileStatus.ERASED}
    if person is not None:
        assert {person.profile_id, *merged_away} <= erased_ids
        assert set(person.identifiers) <= suppressed_keys(after)
    check_nothing_of_the_person_remains(after, erased_ids)
    oracle = Simulator(UNLIMITED).run(without(events + events, suppressed_keys(after)))
    assert signatures(after) == signatures(oracle)


class StrongLinks:
    """The oracle of the would-be person: every claim delivered to a strong identifier while
    another profile owned it, and that identifier was not suppressed yet. Such a claim asks
    for a merge that nothing can decline here (no limits, no bans, a strong link), so the two
    profiles are one person, erased together or not at all, however the erasure raced the
    merge. Read from the deliveries, not from what the handlers decided."""

    def __init__(self) -> None:
        self.pairs: set[tuple[str, str, str]] = set()

    def __call__(self, command: Command, state: IdentifierState | ProfileState | None) -> None:
        if not isinstance(command, Claim) or not isinstance(state, IdentifierState):
            return
        owner = state.owner
        if (
            owner is not None
            and owner != command.profile_id
            and state.status is IdentifierStatus.ACTIVE
            and command.identifier.type not in UNLIMITED.weak_types
        ):
            self.pairs.add((command.profile_id, owner, command.identifier.key))

    def check_erased_together(self, result: SimulationResult) -> None:
        erased = {p for p, s in result.profiles.items() if s.status is ProfileStatus.ERASED}
        for claimant, owner, via in sorted(self.pairs):
            assert (claimant in erased) == (owner in erased), (
                f"{claimant} claimed {via} from {owner}; erased: "
                f"{sorted({claimant, owner} & erased)}"
            )


@given(events=event_lists(), options=delivery, data=st.data())
def test_erase_racing_with_events_and_merges_in_flight_still_erases_and_replay_stays_erased(
    events: list[Event], options: dict[str, Any], data: st.DataObject
) -> None:
    point = data.draw(st.integers(0, len(events)), label="erase enters among the events here")
    subject = subject_of(data, events)
    note(f"events: {[(e.event_id, [i.key for i in e.identifiers]) for e in events]}")
    links = StrongLinks()
    simulator = Simulator(
        UNLIMITED,
        options["partitions"],
        options["seed"],
        duplicate_rate=options["duplicate_rate"],
        witness=links,
    )
    raced = simulator.run([*events[:point], erase(subject), *events[point:]])
    assert "r-erase:completed" in raced.receipts
    erased_ids = {p for p, s in raced.profiles.items() if s.status is ProfileStatus.ERASED}
    check_nothing_of_the_person_remains(raced, erased_ids)
    # The whole person, with every profile that was on its way to join them.
    links.check_erased_together(raced)
    suppressed = suppressed_keys(raced)
    replayed = simulator.run(events, after=raced)
    assert suppressed_keys(replayed) == suppressed
    assert {p for p, s in replayed.profiles.items() if s.status is ProfileStatus.ERASED} == (
        erased_ids
    )
    check_nothing_of_the_person_remains(replayed, erased_ids)
    links.check_erased_together(replayed)
    # What is left is what the events give without the person (as the graph found them).
    oracle = Simulator(UNLIMITED).run(without(events + events, suppressed))
    assert signatures(replayed) == signatures(oracle)
