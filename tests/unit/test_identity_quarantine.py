"""Quarantine as it happens in a shop: a store phone typed at the till, a family card, the
placeholder email on walk-in receipts; detection, the undone glue, release and block. Each
scenario over several partitionings and interleavings, with every invariant checked."""

from __future__ import annotations

import dataclasses

from omnid.identity import history, refusals
from omnid.identity.commands import (
    Absorb,
    Apply,
    Attach,
    Claim,
    Command,
    MergeDeclined,
    MergeOffer,
    MergeRequest,
    MoveOwner,
    OfferRedirected,
    QuarantineBlock,
    QuarantineRelease,
    Relink,
    Resolve,
    SplitOff,
    Unlink,
)
from omnid.identity.invariants import check_all
from omnid.identity.model import Event, Identifier
from omnid.identity.privacy import BLOCK_PREFIX
from omnid.identity.protocol import handle_identifier, handle_profile
from omnid.identity.requests import Forget, SuppressedDrop
from omnid.identity.rules import IdentityRules
from omnid.identity.simulator import Operation, SimulationResult, Simulator
from omnid.identity.state import (
    Claimant,
    IdentifierState,
    IdentifierStatus,
    LinkRule,
    MergeEvidence,
    ProfileIdentifier,
    ProfileState,
    ProfileStatus,
)
from omnid.identity.survivorship import absorb
from omnid.rules_file import load_rules

RULES = load_rules()
DELIVERIES = [(1, 0), (3, 1), (8, 2)]
DAY = 86_400_000
STORE_PHONE = Identifier("phone", "+442079460000")
FAMILY_CARD = Identifier("loyalty_id", "FAMILY1")


def email(n: int) -> Identifier:
    return Identifier("email", f"customer{n}@mail.io")


def till(event_id: str, at: int, *identifiers: Identifier, source: str = "store-7") -> Event:
    return Event(event_id, "pos", source, "purchase", at, at, identifiers, {"name": event_id})


def run(
    rules: IdentityRules,
    *phases: list[Event | Operation],
    partitions: int = 1,
    seed: int = 0,
) -> SimulationResult:
    simulator = Simulator(rules, partitions, seed)
    result = None
    events: list[Event] = []
    for phase in phases:
        result = simulator.run(phase, result)
        events.extend(item for item in phase if isinstance(item, Event))
    assert result is not None
    check_all(rules, events, result, split=True, released=_released(result))
    return result


def _released(result: SimulationResult) -> frozenset[str]:
    return frozenset(k for k, s in result.identifiers.items() if s.released_by is not None)


def people(result: SimulationResult) -> list[list[str]]:
    """The emails each active profile holds (one list per profile holding any)."""
    return sorted(
        sorted(k for k in p.identifiers if k.startswith("email:"))
        for p in result.active_profiles().values()
        if any(k.startswith("email:") for k in p.identifiers)
    )


def store_phone_stream(customers: int, start: int = 0) -> list[Event]:
    return [
        till(f"e{n}", (start + n) * 60_000, email(n), STORE_PHONE)
        for n in range(start, start + customers)
    ]


def review(command: type[QuarantineRelease | QuarantineBlock], request: str) -> Operation:
    def operation(result: SimulationResult) -> list[Command]:
        return [command(STORE_PHONE, "support-anna", request, 10 * DAY)]

    return operation


def test_a_store_phone_typed_for_many_customers_is_quarantined_and_their_profiles_come_apart() -> (
    None
):
    for partitions, seed in DELIVERIES:
        result = run(RULES, store_phone_stream(6), partitions=partitions, seed=seed)
        state = result.identifiers[STORE_PHONE.key]
        assert state.status is IdentifierStatus.QUARANTINED
        # Every customer is a profile of their own again; the phone stays with one of them.
        assert people(result) == [[f"email:{email(n).value}"] for n in range(6)]
        quarantined = [c for c in result.changes if c["kind"] == "quarantined"]
        assert len(quarantined) == 1
        assert quarantined[0]["identifiers"] == [{"type": "phone", "value": STORE_PHONE.value}]
        assert quarantined[0]["counts"]["claimants"] >= 4
        assert quarantined[0]["quarantine"]["channels"] == ["pos"]
        assert quarantined[0]["quarantine"]["sources"] == ["store-7"]
        # Downstream hears of every profile that came apart.
        splits = [c for c in result.changes if c["kind"] == "split"]
        assert splits and all(c["reason"] == "quarantined:phone" for c in splits)


def test_fewer_customers_than_the_threshold_stay_merged_and_without_thresholds_all_do() -> None:
    result = run(RULES, store_phone_stream(3))
    assert result.identifiers[STORE_PHONE.key].status is IdentifierStatus.ACTIVE
    assert len(people(result)) == 1
    # The bench's "without quarantine": the same stream glues everyone the limits allow.
    result = run(RULES.without_quarantine(), store_phone_stream(6))
    assert result.identifiers[STORE_PHONE.key].status is IdentifierStatus.ACTIVE
    assert len(people(result)) < 6


def test_claims_beyond_the_window_do_not_count() -> None:
    spread = [till(f"e{n}", n * 40 * DAY, email(n), STORE_PHONE) for n in range(5)]
    result = run(RULES, spread)
    assert result.identifiers[STORE_PHONE.key].status is IdentifierStatus.ACTIVE


def test_a_merge_that_also_had_another_link_stays_merged() -> None:
    # Customers 0 and 1 also share their own loyalty card: that link is real.
    both = till("both", 30 * 60_000, email(0), email(1), Identifier("loyalty_id", "L01"))
    for partitions, seed in DELIVERIES:
        result = run(RULES, [*store_phone_stream(6), both], partitions=partitions, seed=seed)
        assert result.identifiers[STORE_PHONE.key].status is IdentifierStatus.QUARANTINED
        assert ["email:customer0@mail.io", "email:customer1@mail.io"] in people(result)
        assert len(people(result)) == 5


def test_a_family_card_at_the_front_of_each_event_is_caught_too() -> None:
    # The card is the events' highest-priority identifier: its owner takes the family in
    # without any claim of the card (counted as Sightings).
    events = [till(f"f{n}", n * 60_000, FAMILY_CARD, email(n)) for n in range(5)]
    for partitions, seed in DELIVERIES:
        result = run(RULES, events, partitions=partitions, seed=seed)
        assert result.identifiers[FAMILY_CARD.key].status is IdentifierStatus.QUARANTINED
        assert len(people(result)) == 5


def test_release_links_it_again_and_it_is_never_quarantined_again() -> None:
    for partitions, seed in DELIVERIES:
        result = run(
            RULES,
            store_phone_stream(6),
            [review(QuarantineRelease, "rel-1")],
            store_phone_stream(3, start=6),
            partitions=partitions,
            seed=seed,
        )
        state = result.identifiers[STORE_PHONE.key]
        assert state.status is IdentifierStatus.ACTIVE and state.released_by == "rel-1"
        # The merges follow again from the recorded claims (as far as the limits allow).
        assert len(people(result)) < 9
        released = [c for c in result.changes if c["kind"] == "quarantine_released"]
        assert [(c["operator"], c["event_id"]) for c in released] == [("support-anna", "rel-1")]


def test_block_keeps_it_out_for_good_and_stores_it_as_a_marker() -> None:
    for partitions, seed in DELIVERIES:
        result = run(
            RULES,
            store_phone_stream(6),
            [review(QuarantineBlock, "blk-1")],
            store_phone_stream(3, start=6),
            partitions=partitions,
            seed=seed,
        )
        state = result.identifiers[STORE_PHONE.key]
        assert state.status is IdentifierStatus.SUPPRESSED and state.owner is None
        assert state.suppressed_by == f"{BLOCK_PREFIX}blk-1"
        assert not any(STORE_PHONE.key in p.identifiers for p in result.profiles.values())
        assert len(people(result)) == 9
        assert [c["kind"] for c in result.changes if c["event_id"] == "blk-1"].count(
            "quarantine_blocked"
        ) == 1


def test_an_event_reaching_a_blocked_value_goes_on_with_a_device_alone() -> None:
    """A blocked value is dropped from an event as the blocklist drops it at intake: the event
    goes on with whatever else it has, a weak identifier alone too (a random hunt's: the event
    was dropped as for an erased person, whose device must not pass their traits on, and it
    was counted nowhere). An erased person's marker still drops it."""
    tablet = Identifier("device_id", "tablet-1")
    event = till("e20", 20, STORE_PHONE, tablet)
    blocked = IdentifierState(
        STORE_PHONE, status=IdentifierStatus.SUPPRESSED, suppressed_by=f"{BLOCK_PREFIX}blk-1"
    )
    _, outputs = handle_identifier(RULES, blocked, Resolve(event, 0, create=True))
    assert outputs == [
        SuppressedDrop("phone", event_dropped=False),
        Resolve(event.for_graph((tablet,)), 0, create=True),
    ]
    erased = IdentifierState(STORE_PHONE, status=IdentifierStatus.SUPPRESSED, suppressed_by="er-1")
    _, outputs = handle_identifier(RULES, erased, Resolve(event, 0, create=True))
    assert outputs == [SuppressedDrop("phone", event_dropped=True)]


def test_reviews_of_a_value_that_is_not_quarantined_are_refused_once_answered() -> None:
    state = IdentifierState(STORE_PHONE, owner="P1")
    for command in (
        QuarantineRelease(STORE_PHONE, "anna", "r1", 5),
        QuarantineBlock(STORE_PHONE, "anna", "b1", 5),
    ):
        _, outputs = handle_identifier(RULES, state, command)
        (change,) = outputs
        assert change.record["kind"] == "quarantine_refused"  # type: ignore[union-attr]
        assert change.record["reason"] == "not_quarantined"  # type: ignore[union-attr]
    # A release delivered twice is done once.
    state.status = IdentifierStatus.QUARANTINED
    release = QuarantineRelease(STORE_PHONE, "anna", "r2", 5)
    _, first = handle_identifier(RULES, state, release)
    _, second = handle_identifier(RULES, state, release)
    assert [type(o).__name__ for o in first] == ["IdentityChangeEmission", "Relink"]
    assert second == []


def test_a_quarantined_identifier_links_nothing_at_the_identity_stage() -> None:
    state = IdentifierState(
        STORE_PHONE,
        owner="P1",
        status=IdentifierStatus.QUARANTINED,
        claimants={"P1": Claimant(1)},
    )
    # A claim: no merge; the claimant is told to unlink it.
    claim = Claim(STORE_PHONE, "P2", "e1", 2, known=True)
    _, outputs = handle_identifier(RULES, state, claim)
    assert outputs == [Unlink("P2", STORE_PHONE, "e1", 2)]
    assert "P2" in state.claimants
    # An event carrying it and an email resolves through the email, and the phone goes along
    # for the profile that takes the event to claim (a release asks it again).
    event = till("e2", 3, email(1), STORE_PHONE)
    _, outputs = handle_identifier(RULES, state, Resolve(event, 1))
    passed = (STORE_PHONE,)
    assert outputs == [Resolve(event.for_graph((email(1),)), 0, create=True, passed=passed)]
    # An event with nothing else counts at the phone's holder.
    alone = till("e3", 4, STORE_PHONE)
    _, outputs = handle_identifier(RULES, state, Resolve(alone, 0))
    assert [type(o).__name__ for o in outputs] == ["Apply"]
    # Unknown claimants (anonymous profiles) are not counted.
    _, outputs = handle_identifier(RULES, state, Claim(STORE_PHONE, "P3", "e4", 5))
    assert "P3" not in state.claimants
    assert not any(isinstance(o, Forget) for o in outputs)


def test_a_merge_through_an_identifier_an_undo_moved_away_goes_where_it_went() -> None:
    """P's undo moved the customer's phone to Q, and a later undo refused it at P
    (`quarantined_link`: P's own event joined it only through the placeholder email). A claim
    of the phone by another profile X, still answered by P (the phone is P's until Q moves it),
    is X's link with the phone's new profile: it goes to Q, not dropped as P's refusal (a random
    hunt's: the link through X's event was lost)."""
    phone = Identifier("phone", "+442079461000")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    holder.moved_out[phone.key] = "P3"
    holder.refused[phone.key] = refusals.QUARANTINED_LINK
    _, outputs = handle_profile(RULES, holder, MergeRequest("P2", "P4", phone, "e2", 5))
    assert outputs == [MergeRequest("P3", "P4", phone, "e2", 5)]
    offer = MergeOffer("P1", "P2", (), phone, "e2", 5, offer=1)
    _, outputs = handle_profile(RULES, holder, offer)
    assert outputs == [OfferRedirected("P1", "P2", "P3", phone, "e2", 5, 1)]


def test_a_merge_offered_to_an_undos_new_profile_before_its_split_off_waits_for_it() -> None:
    """The undo's new profile Q is named (an offer redirected to it, say) before its SplitOff
    left its topic: the runtime's batch-local hand-over let the winner's offer overtake it. Q
    judges the offer once the SplitOff founds it, on what Q holds: two known people through a
    shared kiosk tablet are declined (a random hunt's: an empty Q accepted, was absorbed, took
    its SplitOff for a redelivery, and the email it was to hold was held by nobody)."""
    kiosk = Identifier("device_id", "kiosk-1")
    winner = (("device_id:kiosk-1", "device_id"), ("email:c1@shop.io", "email"))
    offer = MergeOffer("P1", "Q", winner, kiosk, "e8", 5, offer=3)
    state, outputs = handle_profile(RULES, None, offer)
    assert outputs == []
    assert state is not None and state.status is ProfileStatus.ACTIVE
    new = ProfileState("Q", created_at=5)
    new.identifiers["email:c4@shop.io"] = ProfileIdentifier(
        "email", "c4@shop.io", 1, "e8", LinkRule.ANCHOR
    )
    new.claimed[kiosk.key] = "device_id"
    state, outputs = handle_profile(RULES, state, SplitOff(new, "unlink:P:5", 5))
    assert state is not None and "email:c4@shop.io" in state.identifiers
    declined = [o for o in outputs if isinstance(o, MergeDeclined)]
    assert [(d.winner, d.loser, d.reason.kind.value) for d in declined] == [
        ("P1", "Q", "weak_link")
    ]
    assert state.status is ProfileStatus.ACTIVE and not state.deferred


def test_an_identifier_claimed_again_after_it_left_with_an_undo_merges_with_where_it_went() -> None:
    """P's undo sent the customer's card L0 (claimed, not held yet) with their email to Q. An
    event then joined L0 to P directly (P claims it again), and that claim found L0 still P's
    (the Attach of the first claim was on its way), so it asked nothing. When that Attach comes,
    L0 goes to Q, and P's own claim meets Q: a merge (a random hunt's: the link was lost)."""
    card = Identifier("loyalty_id", "L0")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    holder.moved_out[card.key] = "P3"
    holder.claimed[card.key] = "loyalty_id"
    attach = Attach("P2", card, 0, "e4", 5, LinkRule.SAME_EVENT)
    _, outputs = handle_profile(RULES, holder, attach)
    assert outputs == [
        Attach("P3", card, 0, "e4", 5, LinkRule.SAME_EVENT, move=True),
        MergeRequest("P2", "P3", card, "e4", 5),
    ]


def test_an_event_sent_on_with_a_moved_identifier_can_come_back_through_one_held_here() -> None:
    """P sends an event found through the placeholder email, which an undo moved to Q, on to
    Q; Q holds the email quarantined and resolves the event again without it, and it comes
    back to P through the customer's own email, which P holds (the card before it has no
    owner): P counts it (a random hunt's: P took it for a copy of one it had passed on, and the
    event was counted nowhere)."""
    card = Identifier("loyalty_id", "L0")
    own = Identifier("email", "c0@shop.io")
    placeholder = Identifier("email", "kasse@filiale.de")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    holder.identifiers[own.key] = ProfileIdentifier("email", "c0@shop.io", 1, "e1", LinkRule.ANCHOR)
    holder.moved_out[placeholder.key] = "P3"
    event = till("e12", 5, card, own, placeholder)
    state, outputs = handle_profile(RULES, holder, Apply("P2", event, 2))
    assert outputs == [Apply("P3", event, 2)]
    again = event.for_graph((card, own))
    assert state is not None
    state, outputs = handle_profile(RULES, state, Apply("P2", again, 1, (placeholder,)))
    assert state is not None and again.digest in state.applied


def test_an_event_resolved_again_without_a_quarantined_identifier_can_come_back_here() -> None:
    """P holds the placeholder email quarantined and the customer's own phone. An event with
    an unowned card, the placeholder and the phone is found here through the placeholder: it
    resolves again without it, and comes back to P through the phone. P counts it (a random
    hunt's: P had remembered the event as one it passed on to its anchor and dropped it as a
    copy, so the event was counted nowhere)."""
    card = Identifier("loyalty_id", "L0")
    placeholder = Identifier("email", "kasse@filiale.de")
    own = Identifier("phone", "+447700900123")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    holder.identifiers[own.key] = ProfileIdentifier("phone", own.value, 1, "e1", LinkRule.ANCHOR)
    holder.identifiers[placeholder.key] = ProfileIdentifier(
        "email", placeholder.value, 1, "e1", LinkRule.SAME_EVENT, quarantined=True
    )
    event = till("e12", 5, card, placeholder, own)
    state, outputs = handle_profile(RULES, holder, Apply("P2", event, 1))
    again = event.for_graph((card, own))
    assert outputs == [Resolve(again, 1, passed=(placeholder,))]
    assert state is not None
    state, outputs = handle_profile(RULES, state, Apply("P2", again, 1, (placeholder,)))
    assert state is not None and event.digest in state.applied
    # A second delivery of the first Apply is not resolved again.
    state, outputs = handle_profile(RULES, state, Apply("P2", event, 1))
    assert outputs == []


def test_an_event_let_go_before_a_release_counts_when_it_comes_back_through_the_value() -> None:
    """P let an event go to its anchor (through the tablet it brought a strong identifier to a
    known profile); the store phone it carries has been released since, and the event comes
    back through the phone. P counts it: it is not the second delivery of one resolved again
    without the phone (a random hunt's: dropped as that, after a release and a block, and
    counted nowhere). Such a second delivery is still dropped."""
    tablet = Identifier("device_id", "tablet-1")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    holder.identifiers[email(1).key] = ProfileIdentifier(
        "email", email(1).value, 1, "e1", LinkRule.ANCHOR
    )
    holder.identifiers[STORE_PHONE.key] = ProfileIdentifier(
        "phone", STORE_PHONE.value, 1, "e1", LinkRule.SAME_EVENT
    )
    holder.released[STORE_PHONE.key] = None
    event = till("e12", 5, STORE_PHONE, tablet)
    holder.passed_on[event.digest] = None
    state, _ = handle_profile(RULES, holder, Apply("P2", event, 0))
    assert state is not None and event.digest in state.applied
    # Found through the phone while it was quarantined here: resolved again without it.
    held = state.identifiers[STORE_PHONE.key]
    state.identifiers[STORE_PHONE.key] = dataclasses.replace(held, quarantined=True)
    state.released.clear()
    other = till("e13", 6, email(2), STORE_PHONE)
    state, outputs = handle_profile(RULES, state, Apply("P2", other, 1))
    assert [type(o).__name__ for o in outputs] == ["Resolve"]
    assert state is not None
    state.identifiers[STORE_PHONE.key] = held
    state.released[STORE_PHONE.key] = None
    state, outputs = handle_profile(RULES, state, Apply("P2", other, 1))
    assert outputs == [] and state is not None and other.digest not in state.applied


def test_what_left_for_an_undos_new_profile_that_merged_back_is_here_again() -> None:
    """P1's undo sent the family card's claim, with a customer, to a new profile P10, which
    then merged into P8; P8 then absorbs P1 as well. P8 does not keep P1's note that the card
    went to P10: an offer through the card would be redirected to P10, which forwards it to
    P8, round and round (a random hunt's livelock: the simulator never went quiet)."""
    phone = Identifier("phone", "+442079461000")
    winner = ProfileState("P8", created_at=0, updated_at=0)
    winner.identifiers["device_id:kiosk-1"] = ProfileIdentifier(
        "device_id", "kiosk-1", 0, "e18", LinkRule.ANCHOR
    )
    new = ProfileState("P10", created_at=1, updated_at=1)
    new.identifiers[phone.key] = ProfileIdentifier("phone", phone.value, 1, "e2", LinkRule.ANCHOR)
    new.claimed[FAMILY_CARD.key] = "loyalty_id"
    state, _ = handle_profile(RULES, winner, Absorb("P8", new, phone, "e16", 2))
    undone = ProfileState("P1", created_at=0, updated_at=0)
    undone.identifiers[email(0).key] = ProfileIdentifier(
        "email", email(0).value, 0, "e5", LinkRule.ANCHOR
    )
    undone.moved_out[FAMILY_CARD.key] = "P10"
    state, _ = handle_profile(RULES, state, Absorb("P8", undone, email(0), "e16", 3))
    assert state is not None and FAMILY_CARD.key not in state.moved_out
    offer = MergeOffer("P4", "P8", (), FAMILY_CARD, "e2", 4, offer=1)
    _, outputs = handle_profile(RULES, state, offer)
    assert not any(isinstance(o, OfferRedirected) for o in outputs)


def test_a_claim_answered_by_a_profile_merged_in_since_meets_the_identifier_where_it_went() -> None:
    """P2's event joined its customer's email to a tablet P1 held: P2 claimed the tablet, and
    P1 asked P2 to merge through it. Before P2 judged that, P1's own email was quarantined and
    its undo moved the tablet to a new profile P3, and P1 merged into P2 through a card. The
    request through the tablet is not dropped as one with a profile absorbed already: P2's
    claim meets P3, which holds the tablet now (a random hunt's: never answered, the event was
    counted at P2 with the tablet held at P3 and no refusal)."""
    tablet = Identifier("device_id", "dev-2")
    card = Identifier("loyalty_id", "L1")
    winner = ProfileState("P2", created_at=0, updated_at=0)
    winner.identifiers[email(1).key] = ProfileIdentifier(
        "email", email(1).value, 0, "e17", LinkRule.ANCHOR
    )
    winner.claimed[tablet.key] = "device_id"
    winner.awaiting, winner.offers = "P1", 1
    winner.deferred.append(MergeRequest("P2", "P1", tablet, "e3", 3))
    loser = ProfileState("P1", created_at=0, updated_at=0)
    loser.identifiers[card.key] = ProfileIdentifier("loyalty_id", "L1", 0, "e19", LinkRule.ANCHOR)
    loser.moved_out[tablet.key] = "P3"
    _, outputs = handle_profile(RULES, winner, Absorb("P2", loser, card, "e19", 5))
    assert MergeRequest("P2", "P3", tablet, "e3", 3) in outputs


def test_a_move_of_a_later_epoch_that_overtakes_the_one_before_it_still_moves_the_owner() -> None:
    """An undo at P6 moved the kiosk tablet to a new profile P8 (epoch 0), and an undo at P8
    then moved it on to P10 (epoch 1). P10's move, handed on within its worker's batch, reaches
    the tablet before P8's, still in its topic. The tablet goes to P10, and P8's late move is
    stale (a random hunt's: P10's move was dropped as of another epoch, and P8's then left the
    tablet pointing at P8, which held it no longer)."""
    kiosk = Identifier("device_id", "kiosk-1")
    state: IdentifierState | None = IdentifierState(kiosk, owner="P6")
    state, _ = handle_identifier(RULES, state, MoveOwner(kiosk, "P10", 1))
    state, _ = handle_identifier(RULES, state, MoveOwner(kiosk, "P8", 0))
    assert state is not None and (state.owner, state.epoch) == ("P10", 2)


def test_an_event_through_a_refused_identifier_that_left_with_an_undo_follows_it() -> None:
    """P2 refused a customer's email `quarantined_link` (only a quarantined card had joined it),
    and a later undo sent that customer away to P5, so the email's Attach, when it came, went on
    to P5 (`moved_attach`); the email points at P2 until P5 moves it. An event found here
    through the email goes to P5 too, behind that Attach, instead of resolving again: that came
    back here, and in one worker's batch it went round for ever while the Attach waited in its
    topic (a random hunt's livelock)."""
    own = Identifier("email", "c1@shop.io")
    tablet = Identifier("device_id", "dev-1")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    holder.identifiers[STORE_PHONE.key] = ProfileIdentifier(
        "phone", STORE_PHONE.value, 0, "e8", LinkRule.ANCHOR, quarantined=True
    )
    holder.refused[own.key] = refusals.QUARANTINED_LINK
    holder.moved_out[own.key] = "P5"
    event = till("e12", 12, own, tablet)
    _, outputs = handle_profile(RULES, holder, Apply("P2", event, 0, (FAMILY_CARD,)))
    assert outputs == [Apply("P5", event, 0, (FAMILY_CARD,))]


def test_a_release_reclaims_only_what_the_profiles_own_events_carry() -> None:
    """An undo's new profile P3 copied the refusals of the profile it left, among them the
    placeholder email refused `quarantined_link` there, which no event of P3's carries. When a
    tablet is released, P3 claims again the card its own event carries, not the placeholder (a
    random hunt's: P3 claimed it, merged with its profile, and held a second customer's email
    joined to its own only by the tablet)."""
    card = Identifier("loyalty_id", "L0")
    tablet = Identifier("device_id", "dev-0")
    placeholder = Identifier("email", "kasse@filiale.de")
    new = ProfileState("P3", created_at=0, updated_at=0)
    new.identifiers[email(0).key] = ProfileIdentifier(
        "email", email(0).value, 6, "e6", LinkRule.ANCHOR
    )
    history.record_event(RULES, new, till("e6", 6, card, email(0), tablet))
    new.refused[card.key] = refusals.QUARANTINED_LINK
    new.refused[placeholder.key] = refusals.QUARANTINED_LINK
    released = MergeRequest("P2", "P3", tablet, "release-0", 9, released=True)
    _, outputs = handle_profile(RULES, new, released)
    claims = {o.identifier for o in outputs if isinstance(o, Claim)}
    assert card in claims and placeholder not in claims


def test_a_released_identifier_joined_here_only_through_another_quarantined_one_leaves() -> None:
    """P2 holds the family card and a customer's card L2, both quarantined (every threshold at
    3), and the placeholder email, its oldest: L2's undo grouped without the family card, which
    stayed, joined to the email only through L2. Released, the family card links again: it is
    grouped again and leaves for a profile of its own, where its claimants' merges go (a random
    hunt's: P2 linked through it again, merged with its claimants, and the placeholder's
    customer ended with another joined to them only through L2)."""
    card = Identifier("loyalty_id", "L2")
    placeholder = Identifier("email", "kasse@filiale.de")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    for identifier, at, quarantined in (
        (placeholder, 1, False),
        (FAMILY_CARD, 2, True),
        (card, 3, True),
    ):
        holder.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type, identifier.value, at, "e", LinkRule.SAME_EVENT, quarantined=quarantined
        )
    history.record_event(RULES, holder, till("e12", 2, FAMILY_CARD, card))
    history.record_event(RULES, holder, till("e14", 3, card, placeholder))
    relink = Relink("P2", FAMILY_CARD, ("P3",), "release-0", 9)
    state, outputs = handle_profile(RULES, holder, relink)
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    assert FAMILY_CARD.key in split.profile.identifiers
    assert state is not None and placeholder.key in state.identifiers
    assert FAMILY_CARD.key not in state.identifiers


def test_an_undos_new_profile_does_not_copy_a_refusal_of_a_claim_its_events_did_not_make() -> None:
    """P1 refused a customer's email `quarantined_link` (only the placeholder joined it, in the
    customer's event). The placeholder's undo sends the phone's person to a new profile P5, whose
    events do not carry that email: P5 does not copy the refusal (a random hunt's: P5 dropped as
    `quarantined_link` the merge answering P1's claim of the email, which P5 took over when it
    absorbed P1 after the release, so the claim was never answered and the event counted at P5
    with the email elsewhere and no reason)."""
    own = Identifier("email", "c3@shop.io")
    placeholder = Identifier("email", "kasse@filiale.de")
    phone = Identifier("phone", "+442079461001")
    holder = ProfileState("P1", created_at=0, updated_at=0)
    for identifier, at in ((placeholder, 1), (phone, 2)):
        holder.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type, identifier.value, at, "e18", LinkRule.SAME_EVENT
        )
    history.record_event(RULES, holder, till("e18", 1, placeholder, phone))
    history.record_event(RULES, holder, till("e13", 3, own, placeholder))
    holder.refused[own.key] = refusals.QUARANTINED_LINK
    _, outputs = handle_profile(RULES, holder, Unlink("P1", placeholder, "e13", 13))
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    assert phone.key in split.profile.identifiers and own.key not in split.profile.refused


def test_an_undos_new_profile_claims_itself_what_it_takes_only_claimed() -> None:
    """The store phone joined a second customer to P; that customer's event also carried a
    tablet, claimed by P and not answered yet. The undo sends the customer, with the tablet's
    claim, to a new profile, which claims the tablet itself: P's own claim may be answered at P
    by a decline P already had with the tablet's holder, which says nothing about the new
    profile (a random draw's: that claim was never answered, and an event was counted with the
    tablet held elsewhere and no refusal)."""
    tablet = Identifier("device_id", "tablet-1")
    steps: list[Command] = [
        Attach("P1", email(1), 0, "e1", 1, LinkRule.ANCHOR),
        Apply("P1", till("e1", 1, email(1), STORE_PHONE)),
        Attach("P1", STORE_PHONE, 0, "e1", 1, LinkRule.SAME_EVENT),
        Apply("P1", till("e2", 2, email(2), STORE_PHONE), 1),
        Attach("P1", email(2), 0, "e2", 2, LinkRule.SAME_EVENT),
        Apply("P1", till("e3", 3, email(2), tablet)),
    ]
    state = None
    for command in steps:
        state, _ = handle_profile(RULES, state, command)
    assert state is not None and tablet.key in state.claimed
    state, outputs = handle_profile(RULES, state, Unlink("P1", STORE_PHONE, "e9", 9))
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    new = split.profile.profile_id
    assert email(2).key in split.profile.identifiers and tablet.key in split.profile.claimed
    assert Claim(tablet, new, "e9", 9) in split.sends


def test_an_offer_through_a_link_only_a_quarantined_identifier_made_keeps_the_winners_claim() -> (
    None
):
    """P2 claimed the card L0 only through a quarantined identifier (refused
    `quarantined_link`); P1's own event joins L0 to P1's tablet. P2 declines P1's offer
    through L0 as `quarantined_link`, and P1 keeps its claim (L0's own profile asks it again):
    P1 still stands for a known person, so a known profile's offer through the tablet is
    declined (a random draw's: P1 dropped its claim as if L0 were quarantined, took the other
    person through the tablet, and the card then joined them)."""
    card = Identifier("loyalty_id", "L0")
    tablet = Identifier("device_id", "tablet-1")
    loser = ProfileState("P2", created_at=0, updated_at=0)
    loser.refused[card.key] = refusals.QUARANTINED_LINK
    _, outputs = handle_profile(RULES, loser, MergeOffer("P1", "P2", (), card, "e2", 5, offer=1))
    assert outputs == [MergeDeclined("P1", "P2", refusals.QUARANTINED_LINK, card, "e2", 5, 1)]
    winner = ProfileState("P1", created_at=0, updated_at=0)
    winner.identifiers[tablet.key] = ProfileIdentifier(
        "device_id", "tablet-1", 0, "e0", LinkRule.ANCHOR
    )
    winner.claimed[card.key] = "loyalty_id"
    winner.awaiting, winner.offers = "P2", 1
    state, _ = handle_profile(RULES, winner, outputs[0])
    assert state is not None and state.awaiting is None
    assert card.key in state.claimed and not state.declined and not state.refused
    known = (("device_id:tablet-1", "device_id"), ("user_id:u0", "user_id"))
    offer = MergeOffer("P0", "P1", known, tablet, "e3", 6, offer=1)
    _, outputs = handle_profile(RULES, state, offer)
    assert [(type(o).__name__, getattr(o, "reason", None)) for o in outputs][-1] == (
        "MergeDeclined",
        refusals.weak_link("device_id"),
    )


def test_a_person_only_claimed_so_far_whose_own_event_came_here_leaves_with_it() -> None:
    """The store phone joined a second customer's email to P (claimed, its Attach on the way),
    and an event of theirs without the phone then came to P through that email, which already
    pointed at P. The undo cannot just refuse the email (that event joins it to nothing
    quarantined): the customer leaves for a new profile with the claim and both events, and
    claims the email itself (a random draw's: the email got a profile of its own and the event
    stayed counted at P with no recorded reason)."""
    steps: list[Command] = [
        Attach("P1", email(1), 0, "e1", 1, LinkRule.ANCHOR),
        Apply("P1", till("e1", 1, email(1), STORE_PHONE)),
        Attach("P1", STORE_PHONE, 0, "e1", 1, LinkRule.SAME_EVENT),
        Apply("P1", till("e2", 2, email(2), STORE_PHONE), 1),
        Apply("P1", till("e3", 3, email(2))),
    ]
    state = None
    for command in steps:
        state, _ = handle_profile(RULES, state, command)
    assert state is not None and email(2).key in state.claimed
    state, outputs = handle_profile(RULES, state, Unlink("P1", STORE_PHONE, "e9", 9))
    assert state is not None and email(2).key not in state.refused
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    new = split.profile
    assert email(2).key in new.claimed and set(new.history.events) >= {"e3"}
    assert Claim(email(2), new.profile_id, "e9", 9) in split.sends
    assert state.moved_out[email(2).key] == new.profile_id


def test_a_block_that_leaves_its_holder_nothing_sends_its_other_events_where_they_belong() -> None:
    """A customer's own email was quarantined (every threshold at 3) and its undo sent every
    other person away, so the holder kept only the email, an event with the email alone and one
    with a family card it had refused (`quarantined_link`). Blocked, the email goes: the card's
    event resolves again without it and leaves the holder's counts, the email-only one stays (a
    random hunt's: the empty holder kept counting the card's event, linked to nothing)."""
    card = Identifier("loyalty_id", "FAMILY1")
    alone, with_card = till("e2", 2, email(0)), till("e13", 13, card, email(0))
    steps: list[Command] = [
        Attach("P1", email(0), 0, "e2", 2, LinkRule.ANCHOR),
        Apply("P1", alone),
        Apply("P1", with_card, 1),
    ]
    state = None
    for command in steps:
        state, _ = handle_profile(RULES, state, command)
    assert state is not None
    state.claimed.pop(card.key)
    state.refused[card.key] = refusals.QUARANTINED_LINK
    state, outputs = handle_profile(RULES, state, Unlink("P1", email(0), "block-0", 20, True))
    assert state is not None and not state.identifiers
    rest = with_card.for_graph((card,))
    assert Resolve(rest, 0, create=True) in outputs
    assert alone.digest in state.applied and with_card.digest not in state.applied
    # A copy still on its way through the email resolves again without it: counted once.
    state, outputs = handle_profile(RULES, state, Apply("P1", with_card, 1))
    assert state is not None and with_card.digest not in state.applied
    assert [type(o).__name__ for o in outputs] == ["Resolve"]


def test_an_offer_through_an_identifier_claimed_again_after_it_left_is_judged_here() -> None:
    """P2's undo sent the tablet it had claimed to Q with another customer; an event of P2's
    own then joined it to the tablet again (claimed again). The tablet's holder P1 offers a
    merge through it: that is P2's own link, judged here (two known people: declined), not
    redirected to Q, which claims the tablet itself (a random draw's: redirected, P2's claim was
    never answered and its event counted with the tablet held elsewhere and no reason)."""
    tablet = Identifier("device_id", "tablet-1")

    def holder() -> ProfileState:
        state = ProfileState("P2", created_at=0, updated_at=0)
        state.identifiers[email(3).key] = ProfileIdentifier(
            "email", email(3).value, 0, "e5", LinkRule.ANCHOR
        )
        state.moved_out[tablet.key] = "P3"
        state.claimed[tablet.key] = "device_id"
        return state

    known = (("device_id:tablet-1", "device_id"), ("user_id:u0", "user_id"))
    _, outputs = handle_profile(RULES, holder(), MergeOffer("P1", "P2", known, tablet, "e10", 5))
    assert [(type(o).__name__, getattr(o, "reason", None)) for o in outputs][-1] == (
        "MergeDeclined",
        refusals.weak_link("device_id"),
    )
    # As the winner of a request through it, likewise.
    _, outputs = handle_profile(RULES, holder(), MergeRequest("P2", "P4", tablet, "e11", 6))
    assert [type(o).__name__ for o in outputs] == ["MergeOffer"]


def test_an_undos_new_profile_claims_every_other_quarantined_identifier_its_events_carry() -> None:
    """The placeholder email was quarantined first (it joined nothing when the store phone's
    undo grouped the identifiers), and a customer's card leaves with the phone's undo, taking an
    event that carries the placeholder too. The new profile claims the placeholder as well as
    the phone: if the placeholder is released, its holder asks the card's profile again (a
    random hunt's: released, the link through that event was lost)."""
    card = Identifier("loyalty_id", "L2")
    placeholder = Identifier("email", "kasse@filiale.de")
    steps: list[Command] = [
        Attach("P1", email(1), 0, "e1", 1, LinkRule.ANCHOR),
        Apply("P1", till("e1", 1, email(1), STORE_PHONE)),
        Attach("P1", STORE_PHONE, 0, "e1", 1, LinkRule.SAME_EVENT),
        Apply("P1", till("e2", 2, card, placeholder, STORE_PHONE), 2),
        Attach("P1", card, 0, "e2", 2, LinkRule.SAME_EVENT),
        Attach("P1", placeholder, 0, "e2", 2, LinkRule.SAME_EVENT),
        Unlink("P1", placeholder, "e3", 3),
    ]
    state = None
    for command in steps:
        state, _ = handle_profile(RULES, state, command)
    assert state is not None and state.identifiers[placeholder.key].quarantined
    state, outputs = handle_profile(RULES, state, Unlink("P1", STORE_PHONE, "e9", 9))
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    assert card.key in split.profile.identifiers
    new = split.profile.profile_id
    claims = [o for o in split.sends if isinstance(o, Claim)]
    assert {c.identifier for c in claims} >= {STORE_PHONE, placeholder}
    assert all(c.profile_id == new and c.known for c in claims)


def test_an_event_resolved_again_without_a_quarantined_identifier_is_not_taken_for_a_copy() -> None:
    """The tablet took the event once (its first resolution reached the tablet's owner, which
    sent it on); the profile it came to at last holds the event's email quarantined, so it
    resolves again without the email, through the tablet. That is a resolution of its own,
    not a second delivery of the first: the tablet sends it to its owner (a random hunt's: the
    tablet dropped it as a copy, and the event was counted nowhere). A second delivery of the
    new resolution is still dropped."""
    tablet = Identifier("device_id", "tablet-1")
    state = IdentifierState(tablet, owner="P2")
    event = till("e11", 5, email(1), tablet)
    _, outputs = handle_identifier(RULES, state, Resolve(event, 1))
    assert outputs == [Apply("P2", event, 1)]
    again = Resolve(event.for_graph((tablet,)), 0, passed=(email(1),))
    _, outputs = handle_identifier(RULES, state, again)
    assert outputs == [Apply("P2", again.event, 0, (email(1),))]
    _, outputs = handle_identifier(RULES, state, again)
    assert outputs == []


def test_a_known_persons_claim_made_again_after_a_direct_link_says_so() -> None:
    """P refused the customer's email: only the store phone, since quarantined, had joined it
    here. An event carrying the family card P holds and the email joins them directly: P claims
    the email again, as a known person (the claim counts towards the email's quarantine) and
    as made again, so the email's new profile, which P's refusal founded, merges with P (a
    random hunt's: the known claim lost `again`, the email ignored a profile that had refused
    it, and the event stayed where the email was not, with no refusal recorded)."""
    own = email(1)
    holder = ProfileState("P1", created_at=0, updated_at=0)
    holder.identifiers[FAMILY_CARD.key] = ProfileIdentifier(
        "loyalty_id", FAMILY_CARD.value, 1, "e2", LinkRule.ANCHOR
    )
    holder.refused[own.key] = refusals.QUARANTINED_LINK
    event = till("e19", 5, FAMILY_CARD, own)
    state, outputs = handle_profile(RULES, holder, Apply("P1", event, 0))
    assert state is not None and own.key not in state.refused
    [claim] = [o for o in outputs if isinstance(o, Claim)]
    assert claim == Claim(own, "P1", "e19", 5, True, "pos", "store-7", again=True)


def test_an_event_left_only_its_quarantined_identifiers_by_a_block_counts_at_their_holder() -> None:
    """An event with the quarantined placeholder email and a tablet resolved through the
    tablet, which has been blocked since. Nothing is left but the email it passed: it counts
    at the email's holder, as an event with nothing but a quarantined identifier does (a
    random hunt's: the block dropped it, and it was counted nowhere though not every identifier
    it had was blocked). With something else left, the passed email goes along with that."""
    tablet = Identifier("device_id", "tablet-1")
    placeholder = Identifier("email", "kasse@filiale.de")
    blocked = IdentifierState(
        tablet, status=IdentifierStatus.SUPPRESSED, suppressed_by=f"{BLOCK_PREFIX}blk-1"
    )
    event = till("e21", 21, placeholder, tablet)
    rest = event.for_graph((tablet,))
    _, outputs = handle_identifier(RULES, blocked, Resolve(rest, 0, passed=(placeholder,)))
    assert outputs == [
        SuppressedDrop("device_id", event_dropped=False),
        Resolve(event.for_graph((placeholder,)), 0, create=True),
    ]
    rest = till("e22", 22, tablet, email(1))
    _, outputs = handle_identifier(RULES, blocked, Resolve(rest, 0, passed=(placeholder,)))
    assert outputs == [
        SuppressedDrop("device_id", event_dropped=False),
        Resolve(rest.for_graph((email(1),)), 0, passed=(placeholder,)),
    ]


def test_a_merge_drops_the_winners_refusal_of_what_it_now_holds() -> None:
    """P3 refused the shared tablet (a weak link to P1, who held it), then absorbed P1 through
    another identifier: the tablet is P3's now, and the refusal goes (a random hunt's: the
    stale refusal, after an undo moved the tablet out, sent an event found through it back to
    the tablet, which still pointed at P3, for ever). A re-link ban stays."""
    tablet = Identifier("device_id", "tablet-1")
    winner = ProfileState("P3", created_at=0, updated_at=0)
    winner.refused[tablet.key] = refusals.weak_link("device_id")
    winner.refused[STORE_PHONE.key] = refusals.ban("ban-1")
    loser = ProfileState("P1", created_at=1, updated_at=0)
    for held in (tablet, STORE_PHONE):
        loser.identifiers[held.key] = ProfileIdentifier(
            held.type, held.value, 1, "e2", LinkRule.ANCHOR
        )
    absorb(winner, loser, RULES.applied_event_window)
    assert tablet.key in winner.identifiers and tablet.key not in winner.refused
    assert winner.refused[STORE_PHONE.key] == refusals.ban("ban-1")


def test_a_released_identifier_joined_here_through_a_person_who_left_leaves_too() -> None:
    """P2 was founded on the store's phone (quarantined) with the customer's card L5, and
    absorbed P0 (the placeholder email, quarantined, and customer c1) through c1, claimed in an
    event found through the phone. The phone's undo sent c1 away with that event; the email
    stayed, held here and joined to L5 by nothing left here. Released, it leaves for a profile
    of its own, and its claimants' merges follow it there (a random hunt's: P2 linked through
    it again, merged its claimants back, and L5's customer ended with c1, joined only through
    the phone)."""
    card = Identifier("loyalty_id", "L5")
    placeholder = Identifier("email", "kasse@filiale.de")
    holder = ProfileState("P2", created_at=0, updated_at=0)
    for identifier, linked_by, at, quarantined in (
        (STORE_PHONE, None, 0, True),
        (card, STORE_PHONE.key, 0, False),
        (placeholder, None, 2, True),
    ):
        holder.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type,
            identifier.value,
            at,
            "e",
            LinkRule.SAME_EVENT,
            linked_by=linked_by,
            quarantined=quarantined,
        )
    history.record_event(RULES, holder, till("e0", 0, card, STORE_PHONE))
    history.record_event(RULES, holder, till("e7", 2, placeholder))
    holder.merges.append(MergeEvidence("P0", email(1).key, STORE_PHONE.key, "e11", 5))
    holder.moved_out[email(1).key] = "P5"
    relink = Relink("P2", placeholder, ("P5",), "release-0", 9)
    state, outputs = handle_profile(RULES, holder, relink)
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    assert placeholder.key in split.profile.identifiers
    assert state is not None and card.key in state.identifiers
    assert placeholder.key not in state.identifiers
    assert state.moved_out[placeholder.key] == split.profile.profile_id


def test_a_known_profile_asked_by_a_release_through_what_only_its_device_carried_declines() -> None:
    """P8 holds a family card and a kiosk's device. It absorbed P7, founded on the device by an
    event that carried the store's phone too, then quarantined (so P7 only claimed it). The
    phone's release asks every claimant: P8's only evidence for the phone is that device
    event, and the card joined the device later, so merging would join the card's holder to
    the phone's customers through the device alone: declined as a weak link (a random hunt's:
    P8 accepted, and the card ended in the phone's profile)."""
    device = Identifier("device_id", "dev-3")
    state = ProfileState("P8", created_at=0, updated_at=0)
    for identifier, at in ((FAMILY_CARD, 1), (device, 2)):
        state.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type, identifier.value, at, "e8", LinkRule.SAME_EVENT
        )
    history.record_event(RULES, state, till("e8", 1, FAMILY_CARD, device))
    history.record_event(RULES, state, till("e15", 2, device, STORE_PHONE))
    state.refused[STORE_PHONE.key] = refusals.QUARANTINED
    winner = ((STORE_PHONE.key, "phone"), (email(2).key, "email"))
    offer = MergeOffer("P2", "P8", winner, STORE_PHONE, "release-0", 9, offer=1, released=True)
    after, outputs = handle_profile(RULES, state, offer)
    [declined] = [o for o in outputs if isinstance(o, MergeDeclined)]
    assert declined.reason == refusals.weak_link("device_id")
    assert after is not None and after.status is ProfileStatus.ACTIVE
    assert not any(isinstance(o, Absorb) for o in outputs)


def test_a_claimant_only_another_quarantined_one_joins_declines_the_release() -> None:
    """P2 holds the placeholder email and a customer's card L0, quarantined since. P2 claimed
    c0's email from an event found through L0, and refused it when c0's email was quarantined
    too. The email's release asks P2 to merge through it: only L0 joins it here, so P2 refuses
    it `quarantined_link` as before that quarantine (a random hunt's: the release lifted the
    refusal, P2 accepted, and the placeholder's customer ended with c0, joined only through
    L0)."""
    card = Identifier("loyalty_id", "L0")
    placeholder = Identifier("email", "kasse@filiale.de")
    phone = Identifier("phone", "+442079461000")
    state = ProfileState("P2", created_at=0, updated_at=0)
    for identifier, at, quarantined in ((placeholder, 1, False), (card, 1, True)):
        state.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type,
            identifier.value,
            at,
            "e1",
            LinkRule.SAME_EVENT,
            quarantined=quarantined,
        )
    history.record_event(RULES, state, till("e1", 1, card, placeholder))
    history.record_event(RULES, state, till("e4", 4, card, email(0), phone))
    state.refused[email(0).key] = refusals.QUARANTINED
    state.refused[phone.key] = refusals.QUARANTINED_LINK
    winner = ((email(0).key, "email"),)
    offer = MergeOffer("P1", "P2", winner, email(0), "release-1", 9, offer=1, released=True)
    after, outputs = handle_profile(RULES, state, offer)
    [declined] = [o for o in outputs if isinstance(o, MergeDeclined)]
    assert declined.reason == refusals.QUARANTINED_LINK
    assert not any(isinstance(o, Absorb) for o in outputs)
    assert after is not None and after.refused[email(0).key] == refusals.QUARANTINED_LINK


def test_an_undo_joins_a_person_through_an_identifier_given_up_for_a_limit() -> None:
    """P holds the placeholder email, joined to it through customer phone 1002 (quarantined
    now), and c2 with L2, also joined through 1002. c0 came with phone 1000, which c2's event
    carried too; 1000 was given up for the phone limit when the profiles merged. 1002's undo
    sends c0 with c2, whom 1000 joins to them, not only the phone's evidence still held (a
    random hunt's: c0 stayed, with the placeholder's customer, joined only through 1002)."""
    placeholder = Identifier("email", "kasse@filiale.de")
    quarantined, given_up = Identifier("phone", "+442079461002"), Identifier("phone", "+4420000")
    card, device = Identifier("loyalty_id", "L2"), Identifier("device_id", "dev-0")
    state = ProfileState("P", created_at=0, updated_at=0)
    for identifier, linked_by, at in (
        (placeholder, None, 1),
        (quarantined, placeholder.key, 1),
        (email(2), quarantined.key, 2),
        (card, quarantined.key, 2),
        (device, None, 3),
        (email(0), device.key, 3),
    ):
        state.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type, identifier.value, at, "e", LinkRule.SAME_EVENT, linked_by=linked_by
        )
    history.record_event(RULES, state, till("e2", 1, quarantined, placeholder))
    history.record_event(RULES, state, till("e1", 2, quarantined, email(2), card))
    history.record_event(RULES, state, till("e0", 3, given_up, email(2)))
    history.record_event(RULES, state, till("e7", 3, device, email(0), given_up))
    state.refused[given_up.key] = refusals.limit("phone")
    after, outputs = handle_profile(RULES, state, Unlink("P", quarantined, "e2", 9))
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    assert {email(2).key, card.key, email(0).key} <= set(split.profile.identifiers)
    assert after is not None and placeholder.key in after.identifiers
    assert email(0).key not in after.identifiers


def test_an_undo_sends_away_a_person_the_glue_joined_through_an_identifier_given_up() -> None:
    """P holds phone 1000 (its oldest) and the family card, quarantined now, which joined
    card L2, given up since for the card limit; c2 came with L2 (and a device the card's event
    carried too). The card's undo sends c2 away: only L2, which only the card joined, ties
    c2 here."""
    phone, card, device = (
        Identifier("phone", "+442079461000"),
        Identifier("loyalty_id", "L2"),
        Identifier("device_id", "dev-2"),
    )
    state = ProfileState("P", created_at=0, updated_at=0)
    for identifier, linked_by, at, quarantined in (
        (phone, None, 0, False),
        (FAMILY_CARD, phone.key, 1, True),
        (device, FAMILY_CARD.key, 2, False),
        (email(2), device.key, 3, False),
    ):
        state.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type,
            identifier.value,
            at,
            "e",
            LinkRule.SAME_EVENT,
            linked_by=linked_by,
            quarantined=quarantined,
        )
    history.record_event(RULES, state, till("e9", 1, phone, FAMILY_CARD))
    history.record_event(RULES, state, till("e13", 2, device, FAMILY_CARD))
    history.record_event(RULES, state, till("e11", 2, card, FAMILY_CARD))
    history.record_event(RULES, state, till("e15", 3, email(2), device, card))
    state.refused[card.key] = refusals.limit("loyalty_id")
    after, outputs = handle_profile(RULES, state, Unlink("P", FAMILY_CARD, "e11", 9))
    [split] = [o for o in outputs if isinstance(o, SplitOff)]
    assert email(2).key in split.profile.identifiers
    assert after is not None and email(2).key not in after.identifiers


def test_a_release_asks_in_vain_a_claimant_whose_claiming_events_left_with_an_undo() -> None:
    """P3 absorbed P1, which had claimed c0's email (quarantined since) in an event with phone
    1000 and the family card. The card's undo sent 1000 away with that event. When the email
    is released, P3 is still a recorded claimant, but nothing here carries the email any more:
    P3 does not merge through it, and refuses it `quarantined_link` (a random hunt's: P3
    merged, and the family card's customer 1003 ended with c0, joined by nothing)."""
    phone = Identifier("phone", "+442079461003")
    state = ProfileState("P3", created_at=0, updated_at=0)
    for identifier, at, quarantined in ((phone, 0, False), (FAMILY_CARD, 1, True)):
        state.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type,
            identifier.value,
            at,
            "e17",
            LinkRule.SAME_EVENT,
            quarantined=quarantined,
        )
    history.record_event(RULES, state, till("e17", 1, FAMILY_CARD, phone))
    state.refused[email(0).key] = refusals.QUARANTINED
    request = MergeRequest("P3", "P0", email(0), "release-0", 9, released=True)
    after, outputs = handle_profile(RULES, state, request)
    assert not any(isinstance(o, MergeOffer) for o in outputs)
    assert after is not None and after.refused[email(0).key] == refusals.QUARANTINED_LINK


def test_claims_only_a_blocked_identifier_joined_stay_refused_when_another_is_released() -> None:
    """P9 held the store's phone (quarantined, then blocked: dropped) with card L4; customer
    c5 and card L2 came in an event through the phone, so P9 refused them `quarantined_link`
    (card L0 too). When L0 is released, P9 judges those claims again: the phone still keeps
    them apart (a random hunt's: the block had left nothing to say the phone was quarantined,
    P9 claimed c5 and L2 again, and the card L4's customer ended with c5)."""
    card, other_card = Identifier("loyalty_id", "L4"), Identifier("loyalty_id", "L2")
    state = ProfileState("P9", created_at=0, updated_at=0)
    for identifier, at, quarantined in ((card, 1, False), (STORE_PHONE, 1, True)):
        state.identifiers[identifier.key] = ProfileIdentifier(
            identifier.type,
            identifier.value,
            at,
            "e4",
            LinkRule.SAME_EVENT,
            quarantined=quarantined,
        )
    history.record_event(RULES, state, till("e4", 1, card, STORE_PHONE))
    history.record_event(RULES, state, till("e13", 2, other_card, email(5), STORE_PHONE))
    for refused in (other_card, email(5)):
        state.refused[refused.key] = refusals.QUARANTINED_LINK
    state, _ = handle_profile(RULES, state, Unlink("P9", STORE_PHONE, "block-1", 8, drop=True))
    assert state is not None and STORE_PHONE.key not in state.identifiers
    released = Identifier("loyalty_id", "L0")
    state.refused[released.key] = refusals.QUARANTINED_LINK
    offer = MergeOffer("P2", "P9", (), released, "release-0", 9, offer=1, released=True)
    state, outputs = handle_profile(RULES, state, offer)
    assert not any(isinstance(o, Claim) for o in outputs)
    assert state is not None and state.refused[email(5).key] == refusals.QUARANTINED_LINK
