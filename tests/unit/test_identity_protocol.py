"""Handler-level behaviour of the graph protocol: idempotence, monotone relabels, epochs, ids."""

from __future__ import annotations

import dataclasses

from omnid.identity import records, refusals
from omnid.identity.commands import (
    Absorb,
    Apply,
    Attach,
    Claim,
    Found,
    IdentityChangeEmission,
    MergeDeclined,
    MergeOffer,
    MergeRequest,
    Output,
    ProfileSnapshot,
    Relabel,
    Release,
    Resolve,
)
from omnid.identity.intake import commands_for_event
from omnid.identity.model import Event, Identifier
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.state import (
    IdentifierState,
    LinkRule,
    ProfileIdentifier,
    ProfileState,
    ProfileStatus,
)
from omnid.identity.ulid import profile_id_for
from omnid.rules_file import load_rules

RULES = load_rules()
ANN = Identifier("email", "ann@shop.io")


def resolve_for(*identifiers: Identifier, event_id: str = "e1") -> Resolve:
    event = Event(event_id, "web", "test", "track", 1_000, 1_000, identifiers)
    (command,) = commands_for_event(RULES, event).commands
    return command


def test_profile_ids_are_deterministic_and_ordered_by_time() -> None:
    first = profile_id_for(1_000, ANN, "0")
    assert first == profile_id_for(1_000, ANN, "0")
    assert len(first) == 26
    assert first < profile_id_for(1_001, Identifier("email", "aaa@shop.io"), "0")
    assert first != profile_id_for(1_000, Identifier("email", "bob@shop.io"), "0")


def test_a_duplicate_resolve_at_the_anchor_starts_nothing() -> None:
    resolve = resolve_for(ANN)
    state, outputs = handle_identifier(RULES, None, resolve)
    assert [type(o) for o in outputs] == [Found]
    state, again = handle_identifier(RULES, state, resolve)
    assert again == []


def test_resolve_probes_in_priority_order_and_creates_at_the_last_probe() -> None:
    resolve = resolve_for(Identifier("anonymous_id", "k1"), ANN)
    assert resolve.key == ANN.key
    _, outputs = handle_identifier(RULES, None, resolve)
    (probe,) = outputs
    assert isinstance(probe, Resolve) and probe.key == "anonymous_id:k1"
    state, outputs = handle_identifier(RULES, None, probe)
    assert state is not None and state.owner is not None
    assert outputs == [Found(state.owner, resolve.event, 1, 0)]


def _founded_by_parts(
    state: ProfileState | None, found: Found
) -> tuple[ProfileState | None, list[Output]]:
    """What a previous build's Resolve made happen: its Attach, then its Apply."""
    attach, apply = found.parts()
    state, outputs = handle_profile(RULES, state, attach)
    state, more = handle_profile(RULES, state, apply)
    return state, [*outputs, *more]


def _commands_and_changes(outputs: list[Output]) -> list[object]:
    return [o for o in outputs if not isinstance(o, ProfileSnapshot)]


def test_found_founds_the_profile_holding_its_anchor_as_attach_then_apply_did() -> None:
    """The founding Resolve sends one command where it sent Attach(anchor) + Apply: the
    profile ends as it did with the two (which a worker may still find in its topic during a
    rolling upgrade, and still handles), with one snapshot, and a redelivery does nothing."""
    device = Identifier("anonymous_id", "k1")
    (probe,) = handle_identifier(RULES, None, resolve_for(device, ANN))[1]
    _, (found,) = handle_identifier(RULES, None, probe)
    assert isinstance(found, Found)
    state, outputs = handle_profile(RULES, None, found)
    old, old_outputs = _founded_by_parts(None, found)
    assert state is not None and old is not None
    assert records.encode(state) == records.encode(old)
    assert set(state.identifiers) == {device.key} and set(state.claimed) == {ANN.key}
    assert _commands_and_changes(outputs) == _commands_and_changes(old_outputs)
    assert [o.version for o in outputs if isinstance(o, ProfileSnapshot)] == [2]
    assert records.decode(records.encode(found)) == found
    before = records.encode(state)
    state, again = handle_profile(RULES, state, found)
    assert again == [] and state is not None and records.encode(state) == before


def test_found_at_a_profile_merged_or_waiting_meets_it_as_its_parts_did() -> None:
    """A Found for a profile that a merge named first (it waits for its founding) or that has
    merged away since (a late duplicate) is handled as its two parts were."""
    (found,) = handle_identifier(RULES, None, resolve_for(ANN))[1]
    assert isinstance(found, Found)
    request = MergeRequest(found.profile_id, "01ZZZZZZZZZZZZZZZZZZZZZZZZ", BOB, "e9", 2_000)
    waiting, _ = handle_profile(RULES, None, request)
    assert waiting is not None and waiting.awaiting == waiting.profile_id
    copy = records.decode(records.encode(waiting))
    state, outputs = handle_profile(RULES, waiting, found)
    old, old_outputs = _founded_by_parts(copy, found)
    assert state is not None and old is not None
    assert records.encode(state) == records.encode(old)
    assert _commands_and_changes(outputs) == _commands_and_changes(old_outputs)
    assert any(isinstance(o, MergeOffer) for o in outputs)
    merged = ProfileState(
        found.profile_id, 0, status=ProfileStatus.MERGED, merged_into="01AAAAAAAAAAAAAAAAAAAAAAAA"
    )
    _, outputs = handle_profile(RULES, merged, found)
    attach, apply = found.parts()
    assert outputs == [
        dataclasses.replace(attach, profile_id="01AAAAAAAAAAAAAAAAAAAAAAAA"),
        Relabel(ANN, "01AAAAAAAAAAAAAAAAAAAAAAAA", 0),
        dataclasses.replace(apply, profile_id="01AAAAAAAAAAAAAAAAAAAAAAAA"),
    ]


def test_claim_of_an_owned_identifier_asks_the_older_profile_to_merge() -> None:
    state = IdentifierState(ANN, owner="01B")
    state, outputs = handle_identifier(RULES, state, Claim(ANN, "01A", "e2", 5))
    assert outputs == [MergeRequest("01A", "01B", ANN, "e2", 5)]
    state, outputs = handle_identifier(RULES, state, Claim(ANN, "01B", "e3", 6))
    assert outputs == []


def test_relabel_only_moves_to_an_older_profile_in_the_same_epoch() -> None:
    state = IdentifierState(ANN, owner="01B", epoch=1)
    state, _ = handle_identifier(RULES, state, Relabel(ANN, "01C", 1))
    assert state is not None and state.owner == "01B"
    state, _ = handle_identifier(RULES, state, Relabel(ANN, "01A", 0))
    assert state is not None and state.owner == "01B"
    state, _ = handle_identifier(RULES, state, Relabel(ANN, "01A", 1))
    assert state is not None and state.owner == "01A"


def test_a_released_identifier_gets_its_own_profile_and_ignores_stale_releases() -> None:
    state = IdentifierState(ANN, owner="01A")
    state, outputs = handle_identifier(
        RULES, state, Release(ANN, "01A", 0, "e1", 5, refusals.limit("email"))
    )
    assert state is not None and state.epoch == 1 and state.owner not in (None, "01A")
    (attach,) = outputs
    assert isinstance(attach, Attach) and attach.profile_id == state.owner
    owner = state.owner
    state, outputs = handle_identifier(
        RULES, state, Release(ANN, "01A", 0, "e1", 5, refusals.limit("email"))
    )
    assert outputs == [] and state is not None and state.owner == owner
    assert handle_identifier(RULES, state, Claim(ANN, "01A", "e9", 9))[1] == []


def test_claimants_turned_away_by_the_owner_are_asked_again_after_a_release() -> None:
    state = IdentifierState(ANN, owner="01B")
    state, outputs = handle_identifier(RULES, state, Claim(ANN, "01C", "e2", 5))
    assert outputs == [MergeRequest("01B", "01C", ANN, "e2", 5)]
    # Their merge is declined (say); later the owner releases the identifier.
    state, outputs = handle_identifier(
        RULES, state, Release(ANN, "01B", 0, "e3", 7, refusals.limit("email"))
    )
    assert state is not None and state.owner is not None
    attach, retry = outputs
    assert isinstance(attach, Attach) and attach.profile_id == state.owner
    assert retry == MergeRequest(*sorted((state.owner, "01C")), ANN, "e3", 7)


def test_attach_over_a_limit_is_refused_once_and_recorded() -> None:
    profile = ProfileState("01A", created_at=0)
    for n in range(5):
        email = Identifier("email", f"p{n}@shop.io")
        handle_profile(RULES, profile, Attach("01A", email, 0, f"e{n}", n, LinkRule.SAME_EVENT))
    sixth = Identifier("email", "p6@shop.io")
    refusal = Attach("01A", sixth, 0, "e6", 6, LinkRule.SAME_EVENT)
    profile_after, outputs = handle_profile(RULES, profile, refusal)
    assert profile_after is not None and len(profile_after.identifiers) == 5
    assert [type(o) for o in outputs] == [Release, IdentityChangeEmission]
    assert outputs[1].record["kind"] == "identifier_released"  # type: ignore[union-attr]
    _, again = handle_profile(RULES, profile_after, refusal)
    assert [type(o) for o in again] == [Release]


def test_apply_twice_counts_once() -> None:
    resolve = resolve_for(ANN)
    apply = Apply("01A", resolve.event)
    profile, first = handle_profile(RULES, None, apply)
    profile, second = handle_profile(RULES, profile, apply)
    assert profile is not None and profile.event_count == 1
    assert first and second == []


TABLET = Identifier("device_id", "store-tablet")
BOB = Identifier("email", "bob@shop.io")


def known(profile_id: str, *identifiers: Identifier) -> ProfileState:
    state = ProfileState(profile_id, created_at=0)
    for identifier in identifiers:
        state.claimed[identifier.key] = identifier.type
    return state


def test_an_event_found_through_a_weak_identifier_bounces_from_a_known_profile() -> None:
    event = Event("e9", "app", "kiosk", "identify", 1_000, 1_000, (BOB, TABLET))
    _, outputs = handle_profile(RULES, known("01A", ANN, TABLET), Apply("01A", event, probe=1))
    assert outputs == [Resolve(event, 0, create=True)]
    # An anonymous profile takes it: that is a login after browsing.
    _, outputs = handle_profile(RULES, known("01B", TABLET), Apply("01B", event, probe=1))
    assert Claim(BOB, "01B", "e9", 1_000) in outputs


def test_a_weak_link_between_known_profiles_is_declined_but_a_strong_one_later_merges() -> None:
    winner = known("01A", ANN, TABLET)
    winner, outputs = handle_profile(RULES, winner, MergeRequest("01A", "01B", TABLET, "e2", 5))
    (offer,) = outputs
    loser, outputs = handle_profile(RULES, known("01B", BOB), offer)
    assert isinstance(loser, ProfileState) and loser.declined == {
        "01A": refusals.weak_link("device_id")
    }
    winner, _ = handle_profile(RULES, winner, outputs[-1])
    assert winner is not None and winner.awaiting is None
    assert winner.declined == {"01B": refusals.weak_link("device_id")}
    # The same pair linked by a shared email is one person after all.
    winner, outputs = handle_profile(RULES, winner, MergeRequest("01A", "01B", BOB, "e3", 6))
    (offer,) = outputs
    _, outputs = handle_profile(RULES, loser, offer)
    assert any(isinstance(o, Absorb) for o in outputs)


def test_a_second_delivery_of_a_bounced_event_is_not_counted_even_if_it_would_now_fit() -> None:
    event = Event("e9", "app", "kiosk", "identify", 1_000, 1_000, (BOB, TABLET))
    profile, outputs = handle_profile(RULES, known("01A", ANN, TABLET), Apply("01A", event, 1))
    assert outputs == [Resolve(event, 0, create=True)]
    assert profile is not None
    profile.claimed.pop(ANN.key)  # say the claim was declined: the profile is anonymous again
    profile, outputs = handle_profile(RULES, profile, Apply("01A", event, 1))
    assert outputs == [] and profile is not None and profile.event_count == 0


def test_a_user_id_refused_for_a_limit_while_anonymous_stays_out_once_made_known() -> None:
    """An anonymous tablet profile took an event with a user id and a kiosk cookie; the user id
    was refused for a limit (its owner held another). A weak merge through the cookie then made
    the profile known (an email). When the user id's owner lets it go, its own new profile asks
    the turned-away claimant again: only the tablet and the cookie join the user id to this
    profile, so that merge would join two people by devices alone, and is declined as a weak
    link, whichever side offers (a random draw of the tight-limits test: it merged)."""
    u3 = Identifier("user_id", "u3")
    cookie = Identifier("anonymous_id", "kiosk-cookie")

    def claimant() -> ProfileState:
        state = known("01B", TABLET, cookie, BOB)
        event = Event("e5", "app", "kiosk", "identify", 1_000, 1_000, (u3, TABLET, cookie))
        state.history.events[event.event_id] = event
        state.refused[u3.key] = refusals.limit("user_id")
        return state

    state, outputs = handle_profile(RULES, claimant(), MergeRequest("01B", "01C", u3, "e4", 5))
    assert outputs == [] and state is not None
    assert state.declined == {"01C": refusals.weak_link("device_id")}
    offer = MergeOffer("01A", "01B", ((u3.key, "user_id"),), u3, "e4", 5, offer=1)
    _, outputs = handle_profile(RULES, claimant(), offer)
    assert MergeDeclined("01A", "01B", refusals.weak_link("device_id"), u3, "e4", 5, 1) in outputs


def test_a_second_delivery_of_a_resolve_beyond_the_first_probe_stops_where_the_first_passed() -> (
    None
):
    """The phone had no owner when the event's Resolve reached it, so the event went on to the
    next identifier; a second delivery of that Resolve (at least once) comes after the phone got
    an owner, and must not count the event there too (a random hunt's: counted by two
    profiles)."""
    phone = Identifier("phone", "+447911123456")
    event = Event("e7", "web", "test", "track", 1_000, 1_000, (ANN, phone, TABLET))
    state, outputs = handle_identifier(RULES, None, Resolve(event, 1))
    assert outputs == [Resolve(event, 2)]
    state, _ = handle_identifier(RULES, state, Claim(phone, "01C", "e8", 2_000))
    assert state is not None and state.owner == "01C"
    _, outputs = handle_identifier(RULES, state, Resolve(event, 1))
    assert outputs == []


def test_an_event_found_through_an_identifier_let_go_for_a_limit_goes_to_its_anchor() -> None:
    """P refused a phone for the phone limit (its Release on the way, the phone still points
    at P). An event with a new email found through that phone would join the email to P through
    a phone P does not hold: it bounces to its anchor instead (a random hunt's: the email joined
    P, and once the phone was quarantined P held two people only it had joined)."""
    phone = Identifier("phone", "+447911123456")
    profile = known("01A", ANN)
    profile.refused[phone.key] = refusals.limit("phone")
    event = Event("e8", "web", "test", "track", 1_000, 1_000, (BOB, phone))
    state, outputs = handle_profile(RULES, profile, Apply("01A", event, 1))
    assert outputs == [Resolve(event, 0, create=True)]
    assert state is not None and event.digest not in state.applied


def test_an_event_found_through_the_very_identifier_let_go_for_a_limit_goes_where_it_went() -> None:
    """The same when the phone let go is the event's first identifier: P does not take the
    event; resolved again, it reaches the phone's own profile, which the Release sent before
    founds (a random hunt's: P took it, and the email it carried joined P through the phone
    alone, and through a quarantined card that had joined the phone)."""
    phone = Identifier("phone", "+447911123456")
    profile = known("01A", ANN)
    profile.refused[phone.key] = refusals.limit("phone")
    event = Event("e8", "web", "test", "track", 1_000, 1_000, (phone, BOB))
    state, outputs = handle_profile(RULES, profile, Apply("01A", event, 0))
    assert outputs == [Resolve(event, 0, create=True)]
    assert state is not None and event.digest not in state.applied
    assert BOB.key not in state.claimed


def test_an_event_found_through_a_held_identifier_refused_for_a_limit_is_taken() -> None:
    """A profile that declined a merge for a limit refuses the link identifier even when it
    holds it, and keeps it: an event found through it is this profile's, not bounced (it
    would come straight back here, for ever: the identifier points here)."""
    phone = Identifier("phone", "+447911123456")
    profile = known("01A", ANN)
    profile.identifiers[phone.key] = ProfileIdentifier(
        "phone", phone.value, 1, "e1", LinkRule.SAME_EVENT
    )
    profile.refused[phone.key] = refusals.limit("phone")
    event = Event("e8", "web", "test", "track", 1_000, 1_000, (phone, BOB))
    state, outputs = handle_profile(RULES, profile, Apply("01A", event, 0))
    assert not any(isinstance(o, Resolve) for o in outputs)
    assert state is not None and event.digest in state.applied
