"""Erase, suppress, unsuppress and export through the graph protocol, in the simulator."""

from __future__ import annotations

import json

import pytest

from omnid.identity import records
from omnid.identity.commands import Apply, Claim, Command, MergeOffer, MergeRequest, Output
from omnid.identity.model import ConsentChange, Event, Identifier
from omnid.identity.privacy import export_document, marker_key
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.requests import PrivacyKind, PrivacyRequest
from omnid.identity.simulator import SimulationResult, Simulator
from omnid.identity.stages import Stage
from omnid.identity.state import IdentifierStatus, ProfileState, ProfileStatus
from omnid.rules_file import load_rules

RULES = load_rules()
DELIVERIES = [(1, 0), (4, 1), (8, 2)]


def event(event_id: str, at: int, *identifiers: tuple[str, str], **traits: str) -> Event:
    return Event(
        event_id=event_id,
        channel="web",
        source="test",
        event_type="identify",
        occurred_at=at,
        received_at=at + 10,
        identifiers=tuple(Identifier(t, v) for t, v in identifiers),
        traits=traits,
    )


def request(
    request_id: str, kind: PrivacyKind, subject: tuple[str, str] | None = None, **fields: str
) -> PrivacyRequest:
    return PrivacyRequest(
        request_id=request_id,
        kind=kind,
        subject=Identifier(*subject) if subject else None,
        profile_id=fields.get("profile_id"),
        requested_by="test",
        reason=None,
        requested_at=1_000,
    )


ANN = [
    event("e1", 1, ("email", "ann@shop.io"), ("user_id", "u1"), name="Ann"),
    event("e2", 2, ("phone", "+447911123456"), ("crm_id", "c2"), tier="gold"),
    event("e3", 3, ("email", "ann@shop.io"), ("phone", "+447911123456")),
]
BOB = [event("b1", 1, ("email", "bob@shop.io"), name="Bob")]
ANN_VALUES = ["ann@shop.io", "u1", "c2", "+447911123456", "Ann", "gold"]


def settled(events: list[Event | PrivacyRequest], partitions: int, seed: int) -> SimulationResult:
    return Simulator(RULES, partitions, seed, duplicate_rate=0.1).run(events)


def stored_text(result: SimulationResult) -> str:
    """Every state as the tables would store it (markers only under their HMAC key)."""
    parts = []
    for key, state in result.identifiers.items():
        if state.status is IdentifierStatus.SUPPRESSED and state.owner is None:
            parts.append(marker_key(b"test", key) + json.dumps(state.suppressed_by))
        else:
            parts.append(key + records.encode(state).decode(errors="replace"))
    for key, profile in result.profiles.items():
        parts.append(key + records.encode(profile).decode(errors="replace"))
    parts.extend(json.dumps(update) for update in result.updates.values())
    return "\n".join(parts)


@pytest.mark.parametrize(("partitions", "seed"), DELIVERIES)
def test_erase_by_one_identifier_removes_the_whole_merged_person_and_replay_recreates_nothing(
    partitions: int, seed: int
) -> None:
    before = settled([*ANN, *BOB], partitions, seed)
    ann = before.profile_of("email:ann@shop.io")
    assert ann is not None and ann.merged_from, "the three events make one merged profile"
    ids = {ann.profile_id, *ann.merged_from}
    simulator = Simulator(RULES, partitions, seed + 1, duplicate_rate=0.1)
    after = simulator.run([request("r1", PrivacyKind.ERASE, ("crm_id", "c2"))], after=before)

    completed = after.receipts["r1:completed"]
    assert completed["counts"] == {
        "identifiers_suppressed": 4,
        "profiles_erased": len(ids),
        "records_removed": 4 + len(ids),
    }
    assert after.receipts["r1:accepted"]["status"] == "accepted"
    assert "ann" not in json.dumps(after.receipts)
    for profile_id in ids:
        assert after.profiles[profile_id].status is ProfileStatus.ERASED
        assert profile_id in after.tombstoned and profile_id not in after.updates
    erased = [c for c in after.changes if c["kind"] == "erased"]
    assert erased and all(c["identifiers"] == [] for c in erased)
    text = stored_text(after)
    assert not [value for value in ANN_VALUES if value in text]
    assert after.profile_of("email:bob@shop.io") is not None

    replayed = simulator.run([*ANN, *BOB], after=after)
    assert not [value for value in ANN_VALUES if value in stored_text(replayed)]
    assert replayed.suppressed_events >= 3
    assert {p.profile_id for p in replayed.active_profiles().values()} == {
        p.profile_id for p in after.active_profiles().values()
    }


@pytest.mark.parametrize(("partitions", "seed"), DELIVERIES)
def test_a_later_event_keeps_its_other_identifiers_but_drops_the_suppressed_one(
    partitions: int, seed: int
) -> None:
    events: list[Event | PrivacyRequest] = [
        request("r1", PrivacyKind.ERASE, ("email", "ann@shop.io")),
    ]
    erased = settled(events, partitions, seed)
    assert erased.receipts["r1:completed"]["counts"]["identifiers_suppressed"] == 1
    late = event("e9", 9, ("email", "ann@shop.io"), ("crm_id", "c7"), tier="silver")
    result = Simulator(RULES, partitions, seed).run([late], after=erased)
    profile = result.profile_of("crm_id:c7")
    assert profile is not None and set(profile.identifiers) == {"crm_id:c7"}
    assert profile.traits["tier"].value == "silver" and not profile.claimed
    assert result.suppressed_identifiers >= 1 and result.suppressed_events == 0


def test_suppress_keeps_the_data_stops_processing_and_unsuppress_lifts_it() -> None:
    base = settled(list(ANN), 4, 5)
    ann = base.profile_of("email:ann@shop.io")
    assert ann is not None
    simulator = Simulator(RULES, 4, 6)
    suppressed = simulator.run([request("s1", PrivacyKind.SUPPRESS, ("user_id", "u1"))], base)
    assert suppressed.receipts["s1:completed"]["counts"] == {"identifiers_suppressed": 4}
    after_event = simulator.run([event("e4", 4, ("user_id", "u1"), name="Annie")], suppressed)
    kept = after_event.profiles[ann.profile_id]
    assert kept.status is ProfileStatus.ACTIVE and kept.traits["name"].value == "Ann"
    assert after_event.suppressed_events == 1
    lifted = simulator.run(
        [request("s2", PrivacyKind.UNSUPPRESS, ("email", "ann@shop.io"))], after_event
    )
    again = simulator.run([event("e5", 5, ("user_id", "u1"), name="Annie")], lifted)
    assert again.profiles[ann.profile_id].traits["name"].value == "Annie"


def test_requests_about_unknown_subjects_and_duplicates_answer_once() -> None:
    result = settled(
        [
            request("x1", PrivacyKind.EXPORT, ("email", "nobody@shop.io")),
            request("x2", PrivacyKind.ERASE, profile_id="01NOSUCHPROFILE0000000000"),
            *BOB,
        ],
        2,
        0,
    )
    assert result.receipts["x1:failed"]["reason"] == "unknown_subject"
    assert result.receipts["x2:failed"]["reason"] == "unknown_subject"
    bob = result.profile_of("email:bob@shop.io")
    assert bob is not None
    simulator = Simulator(RULES, 2, 1, duplicate_rate=0.5)
    erase = request("r7", PrivacyKind.ERASE, profile_id=bob.profile_id)
    twice = simulator.run([erase, erase], after=result)
    assert twice.receipts["r7:completed"]["counts"]["profiles_erased"] == 1
    assert twice.receipts["r7:completed"]["reason"] is None


def test_the_export_document_holds_the_profile_its_events_and_consent_as_it_changed() -> None:
    consenting = Event(
        event_id="e7",
        channel="email",
        source="esp",
        event_type="unsubscribed",
        occurred_at=7,
        received_at=7,
        identifiers=(Identifier("email", "ann@shop.io"),),
        consent=(ConsentChange("email", False),),
    )
    result = settled([*ANN, consenting], 2, 0)
    profile = result.profile_of("email:ann@shop.io")
    assert profile is not None
    document = export_document(profile)
    assert {i["value"] for i in document["identifiers"]} >= {"ann@shop.io", "u1", "c2"}
    assert document["traits"]["name"]["value"] == "Ann"
    assert document["computed"]["consent"]["email"]["source"] == "esp"
    assert document["consent_history"] == [
        {"purpose": "email", "granted": False, "at": 7, "source": "esp", "event_id": "e7"}
    ]
    assert {e["event_id"] for e in document["events"]} == {"e1", "e2", "e3", "e7"}
    json.dumps(document)  # the API serves it as JSON as it is


# --- merges on their way to the person when the erasure runs ------------------------------------


def deliver(result: SimulationResult, command: Command) -> list[Output]:
    """One command handled by hand, as a worker would; what it sends on is returned unsent,
    so the test decides when that arrives (after the erasure, here)."""
    key = command.key
    if command.stage is Stage.IDENTITY:
        id_state, outputs = handle_identifier(RULES, result.identifiers.get(key), command)
        if id_state is not None:
            result.identifiers[key] = id_state
    else:
        profile, outputs = handle_profile(RULES, result.profiles.get(key), command)
        if profile is not None:
            result.profiles[key] = profile
    return outputs


def merge_in_flight(
    before: SimulationResult, profile: ProfileState, event_: Event
) -> MergeRequest | MergeOffer:
    """`profile` takes `event_`, whose identifier the other person holds: the merge request
    its claim sends, and if `profile` is the older, the offer that request makes."""
    (claim,) = [
        o for o in deliver(before, Apply(profile.profile_id, event_)) if isinstance(o, Claim)
    ]
    (merge_request,) = deliver(before, claim)
    assert isinstance(merge_request, MergeRequest)
    if merge_request.winner != profile.profile_id:
        return merge_request
    (offer,) = deliver(before, merge_request)
    assert isinstance(offer, MergeOffer)
    return offer


ANN_AT_1 = event("e1", 1, ("email", "ann@shop.io"), ("user_id", "u1"), name="Ann")
ANN_AT_7 = event("e1", 7, ("email", "ann@shop.io"), ("user_id", "u1"), name="Ann")
BOB_AT_5 = event("b1", 5, ("email", "bob@shop.io"), name="Bob")
# Bob's login with Ann's user id: the two are one person (and one user id fits a profile).
BOB_AS_U1 = event("b2", 8, ("email", "bob@shop.io"), ("user_id", "u1"), tier="gold")


@pytest.mark.parametrize(
    ("ann", "in_flight"),
    [(ANN_AT_1, MergeRequest), (ANN_AT_7, MergeOffer)],
    ids=["request-to-the-erased-winner", "offer-to-the-erased-loser"],
)
def test_a_merge_on_its_way_to_the_person_when_erased_is_erased_with_them(
    ann: Event, in_flight: type[MergeRequest | MergeOffer]
) -> None:
    simulator = Simulator(RULES, 4, 3, duplicate_rate=0.2, serialise=True)
    before = simulator.run([ann, BOB_AT_5])
    bob = before.profile_of("email:bob@shop.io")
    assert bob is not None
    pending = merge_in_flight(before, bob, BOB_AS_U1)
    assert isinstance(pending, in_flight)
    erased = simulator.run([request("r1", PrivacyKind.ERASE, ("email", "ann@shop.io"))], before)
    assert erased.receipts["r1:completed"]["counts"]["profiles_erased"] == 1
    assert erased.profiles[bob.profile_id].status is ProfileStatus.ACTIVE

    after = simulator.run([lambda _: [pending]], after=erased)

    assert after.profiles[bob.profile_id].status is ProfileStatus.ERASED
    assert bob.profile_id in after.tombstoned and bob.profile_id not in after.updates
    assert after.identifiers["email:bob@shop.io"].status is IdentifierStatus.SUPPRESSED
    # The receipt, sent again, counts Bob's profile and email (u1, claimed by both, once).
    assert after.receipts["r1:completed"]["counts"] == {
        "identifiers_suppressed": 3,
        "profiles_erased": 2,
        "records_removed": 5,
    }
    (change,) = [c for c in after.changes if c["kind"] == "erased" and c["other_profile_id"]]
    assert change["other_profile_id"] == bob.profile_id and change["identifiers"] == []
    values = ["ann@shop.io", "u1", "Ann", "bob@shop.io", "Bob", "gold"]
    assert not [value for value in values if value in stored_text(after)]
    replayed = simulator.run([ann, BOB_AT_5, BOB_AS_U1], after=after)
    assert not replayed.active_profiles()


@pytest.mark.parametrize(
    ("ann", "bob", "bob_with_ann"),
    [
        # a shared tablet between two known people links nobody
        (
            event("e1", 1, ("email", "ann@shop.io"), ("device_id", "tablet"), name="Ann"),
            BOB_AT_5,
            event("b2", 8, ("email", "bob@shop.io"), ("device_id", "tablet"), tier="gold"),
        ),
        # Bob's own user id and Ann's would be two in one profile: over the limit
        (
            ANN_AT_1,
            event("b1", 5, ("user_id", "u2"), name="Bob"),
            event("b2", 8, ("user_id", "u2"), ("email", "ann@shop.io"), tier="gold"),
        ),
    ],
    ids=["weak-link", "over-a-limit"],
)
def test_a_merge_on_its_way_that_would_have_been_declined_leaves_the_other_profile(
    ann: Event, bob: Event, bob_with_ann: Event
) -> None:
    simulator = Simulator(RULES, 4, 3, duplicate_rate=0.2)
    before = simulator.run([ann, bob])
    bob_profile = before.profile_of(bob.identifiers[0].key)
    assert bob_profile is not None
    pending = merge_in_flight(before, bob_profile, bob_with_ann)
    erased = simulator.run([request("r1", PrivacyKind.ERASE, ("email", "ann@shop.io"))], before)
    changes_before = len(erased.changes)

    after = simulator.run([lambda _: [pending]], after=erased)

    kept = after.profiles[bob_profile.profile_id]
    assert kept.status is ProfileStatus.ACTIVE
    assert set(kept.identifiers) == {bob.identifiers[0].key}
    assert not kept.claimed and not kept.refused, "nothing of Ann is kept, not even a refusal"
    assert after.receipts["r1:completed"]["counts"]["profiles_erased"] == 1
    ann_keys = {i.key for i in ann.identifiers}
    # Bob's event stays his, without Ann's identifier (as the events without Ann would give).
    assert kept.history.events["b2"].identifiers == (bob_with_ann.identifiers[0],)
    suppressed = {
        k for k, s in after.identifiers.items() if s.status is IdentifierStatus.SUPPRESSED
    }
    assert suppressed == ann_keys
    later = after.changes[changes_before:]
    assert not [c for c in later if c["identifiers"]], "no change names Ann's identifiers"
