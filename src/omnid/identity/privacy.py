"""Erase, suppress, unsuppress and export as handlers of the graph protocol (pure, no I/O).

Erasure follows the graph: the subject resolves to its surviving profile, which erases itself,
every profile id merged into it, and every identifier it holds or has claimed. What remains is
an erased stub under each profile id (status and counts only, so late commands are recognised)
and, per identifier, a suppression marker: the request id stored under an HMAC of the
identifier's key, never the key itself (`marker_key`). A suppressed identifier is dropped from
every later event that carries it, so a replay of the inputs does not bring the person back.

Races: a merge with the person that is still on its way when the erasure runs (a MergeRequest,
MergeOffer or Absorb in flight, or deferred) erases the other profile too, if it would have been
accepted. The erased stub keeps, of the identifiers it erased, only keyed digests and their types
(`erased_linked`), and offers itself with them; the other profile judges the offer like any
other (limits, the weak-link rule, bans) and, accepting, sends its Absorb, which erases it here:
tombstones, suppression, an `erased` IdentityChange, and the receipt sent again with the new
counts. An event that resolved to the person just before the erasure is resolved again without
the identifier that found the person (it had not joined them yet).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity import refusals
from omnid.identity.commands import (
    Absorb,
    Apply,
    Attach,
    Claim,
    IdentityChangeEmission,
    IdentityCommand,
    MergeDeclined,
    MergeOffer,
    MergeRequest,
    MoveOwner,
    OfferRedirected,
    Output,
    ProfileCommand,
    ProfileTombstone,
    Resolve,
)
from omnid.identity.evidence import MANUAL_LINK
from omnid.identity.model import Event, Identifier, epoch_millis
from omnid.identity.normalisers import RejectedIdentifier
from omnid.identity.rendering import ChangeKind, profile_update_record
from omnid.identity.requests import (
    Count,
    EraseMerged,
    Forget,
    PrivacyKind,
    PrivacyReceiptEmission,
    PrivacyRequest,
    ProfileRequest,
    ReceiptReason,
    ReceiptStatus,
    SubjectRequest,
    Suppress,
    SuppressedDrop,
    Unsuppress,
    receipt,
)
from omnid.identity.rules import IdentityRules, normalise
from omnid.identity.state import (
    IdentifierState,
    IdentifierStatus,
    ProfileState,
    ProfileStatus,
    identifier_digest,
)

MARKER_PREFIX = "suppressed:"
# Commands this module handles whatever the state's status (the graph's own commands reach it
# only at a suppressed identifier or an erased profile: `at_suppressed`, `at_erased`).
IDENTIFIER_COMMANDS = (SubjectRequest, Suppress, Unsuppress)
PROFILE_COMMANDS = (ProfileRequest, EraseMerged, Forget)


def marker_key(secret: bytes, identifier_key: str) -> str:
    """The key a suppression marker is stored under: an HMAC of the normalised identifier key
    (the secret keeps a dictionary of emails from being hashed and compared against it)."""
    return MARKER_PREFIX + identifier_digest(secret, identifier_key)


def is_marker(state: IdentifierState) -> bool:
    """Suppressed and owned by nobody: stored as a marker only, the clear key deleted."""
    return state.status is IdentifierStatus.SUPPRESSED and state.owner is None


# The marker of a value an operator blocked out of quarantine (`suppressed_by` = this + the
# request id), not of an erased person.
BLOCK_PREFIX = "block:"


def marker_state(identifier: Identifier, request_id: str | None) -> IdentifierState:
    """The state a marker stands for (its identifier is the key it was looked up by)."""
    return IdentifierState(identifier, status=IdentifierStatus.SUPPRESSED, suppressed_by=request_id)


def request_from_record(rules: IdentityRules, record: Mapping[str, Any]) -> PrivacyRequest:
    """A PrivacyRequest from its Avro record, the subject normalised by the identity rules;
    InvalidEvent when it cannot be carried out (the detail never holds the subject's value)."""
    try:
        kind = PrivacyKind(str(record.get("kind")))
    except ValueError:
        raise InvalidEvent(RejectionReason.INVALID_FIELD, "kind is not a privacy kind") from None
    raw_subject = record.get("subject")
    profile_id = record.get("profile_id") or None
    if (raw_subject is None) == (profile_id is None):
        raise InvalidEvent(RejectionReason.INVALID_FIELD, "give exactly one of subject, profile_id")
    subject = None
    if raw_subject is not None:
        try:
            subject = normalise(rules, str(raw_subject["type"]), str(raw_subject["value"]))
        except RejectedIdentifier as error:
            raise InvalidEvent(
                RejectionReason.INVALID_FIELD, f"subject: {error.reason.value}"
            ) from None
    request_id = record.get("request_id")
    if not isinstance(request_id, str) or not request_id:
        raise InvalidEvent(RejectionReason.INVALID_FIELD, "request_id is empty")
    return PrivacyRequest(
        request_id=request_id,
        kind=kind,
        subject=subject,
        profile_id=profile_id,
        requested_by=str(record.get("requested_by") or ""),
        reason=record.get("reason"),
        requested_at=epoch_millis(record.get("requested_at"), "requested_at"),
    )


def export_document(profile: ProfileState) -> dict[str, Any]:
    """Everything omnid holds about the person whose surviving profile this is (access and
    portability): the profile with identifier provenance and trait sources, consent and how it
    changed, orders, the events kept in its history, merges, refused links, declined merges."""
    document = profile_update_record(profile)
    document["refused_identifiers"] = [
        {"identifier": key, "reason": str(reason)}
        for key, reason in sorted(profile.refused.items())
    ]
    document["declined_merges"] = [
        {"profile_id": other, "reason": str(reason)}
        for other, reason in sorted(profile.declined.items())
    ]
    document["orders"] = [
        {
            "order_id": order_id,
            "amount": line.amount,
            "currency": line.currency,
            "at": line.stamp[0],
        }
        for order_id, line in sorted(profile.orders.items())
    ]
    kept = sorted(profile.history.events.values(), key=lambda e: (e.event_time, e.event_id))
    # Consent as it changed, from the events the profile still keeps (its history window).
    document["consent_history"] = [
        {
            "purpose": change.purpose,
            "granted": change.granted,
            "at": event.event_time,
            "source": event.source,
            "event_id": event.event_id,
        }
        for event in kept
        for change in event.consent or ()
    ]
    document["events"] = [
        {
            "event_id": event.event_id,
            "channel": event.channel,
            "source": event.source,
            "event_type": event.event_type,
            "at": event.event_time,
            "identifiers": [{"type": i.type, "value": i.value} for i in event.identifiers],
            "traits": dict(event.traits),
        }
        for event in kept
    ]
    return document


def commands_for_request(request: PrivacyRequest) -> list[Output]:
    """How a request enters the graph: its `accepted` receipt and the first command."""
    accepted = receipt(request, ReceiptStatus.ACCEPTED)
    if request.subject is not None:
        return [accepted, SubjectRequest(request)]
    return [accepted, ProfileRequest(request, request.profile_id or "")]


# --- identity stage ----------------------------------------------------------------------------


def at_suppressed(
    rules: IdentityRules, state: IdentifierState, command: IdentityCommand
) -> tuple[IdentifierState, list[Output]]:
    """A graph command reaching a suppressed identifier."""
    if isinstance(command, Resolve):
        # A blocked value is dropped as the blocklist drops it at intake: the event goes on
        # with whatever else it has, a device alone too (no person's data is at stake), and
        # the quarantined identifiers it passed on its way still go along to be claimed.
        blocked = (state.suppressed_by or "").startswith(BLOCK_PREFIX)
        event = command.event
        if blocked and command.passed and len(event.identifiers) == 1:
            # Nothing left but the quarantined identifiers it passed: it counts at their
            # holder, as an event with nothing but a quarantined identifier does. A resolution
            # of its own (`create`: the quarantined identifier took the event's digest when it
            # passed it on, and would take this for a second delivery).
            alone = Resolve(event.for_graph(command.passed), 0, create=True)
            return state, [SuppressedDrop(event.identifiers[0].type, event_dropped=False), alone]
        return state, resolve_without(
            rules, event, command.probe, command.create, blocked, command.passed
        )
    if isinstance(command, Claim):
        dropped = SuppressedDrop(command.identifier.type, event_dropped=False)
        return state, [dropped, Forget(command.profile_id, command.identifier)]
    return state, []  # Relabel, Release, MoveOwner: a suppressed identifier's owner stays


def resolve_without(
    rules: IdentityRules,
    event: Event,
    probe: int,
    create: bool,
    keep_weak: bool = False,
    passed: tuple[Identifier, ...] = (),
) -> list[Output]:
    """The event goes on without its suppressed identifier `probe`, carrying the quarantined
    identifiers it `passed`. It is dropped when nothing is left but weak identifiers (unless
    `keep_weak`): a device the erased person shared must not pass their traits on."""
    dropped = event.identifiers[probe]
    remaining = event.identifiers[:probe] + event.identifiers[probe + 1 :]
    weak = rules.weak_types
    left_nothing = not remaining or (
        not keep_weak and all(identifier.type in weak for identifier in remaining)
    )
    outputs: list[Output] = [SuppressedDrop(dropped.type, event_dropped=left_nothing)]
    if left_nothing:
        return outputs
    outputs.append(resolve_rest(event, probe, create, passed))
    return outputs


def resolve_rest(
    event: Event, probe: int, create: bool, passed: tuple[Identifier, ...] = ()
) -> Resolve:
    """The Resolve of the event without its identifier `probe` (it has others), carrying the
    quarantined identifiers it `passed`."""
    remaining = event.identifiers[:probe] + event.identifiers[probe + 1 :]
    smaller = event.for_graph(remaining)
    if create:
        return Resolve(smaller, 0, create=True, passed=passed)
    # The identifiers before `probe` had no owner: probing resumes at the next one, or, when
    # the dropped one was the last, the last of them (probed already) founds the profile.
    resume = min(probe, len(remaining) - 1)
    return Resolve(smaller, resume, create=resume < probe, passed=passed)


def on_subject_request(
    rules: IdentityRules, state: IdentifierState | None, command: SubjectRequest
) -> tuple[IdentifierState | None, list[Output]]:
    request = command.request
    subject = request.subject
    assert subject is not None
    if state is not None and state.owner is not None:
        return state, [ProfileRequest(request, state.owner)]
    if state is not None and state.status is IdentifierStatus.SUPPRESSED:
        if state.suppressed_by == request.request_id:
            return state, []  # a second delivery: the receipt was sent the first time
        if request.kind is PrivacyKind.UNSUPPRESS:
            counts = {Count.IDENTIFIERS_UNSUPPRESSED.value: 1}
            done = receipt(request, ReceiptStatus.COMPLETED, counts=counts)
            return IdentifierState(subject), [done]
        if request.kind is PrivacyKind.EXPORT:
            return state, [receipt(request, ReceiptStatus.FAILED, reason=ReceiptReason.ERASED)]
        return state, [
            receipt(request, ReceiptStatus.COMPLETED, reason=ReceiptReason.ALREADY_SUPPRESSED)
        ]
    # Nobody holds it (yet): an erasure or suppression still leaves a marker, so events about
    # the person that are in flight or replayed later do not create them.
    if request.kind in (PrivacyKind.ERASE, PrivacyKind.SUPPRESS):
        counts = {Count.IDENTIFIERS_SUPPRESSED.value: 1}
        if request.kind is PrivacyKind.ERASE:
            counts[Count.RECORDS_REMOVED.value] = 0 if state is None else 1
        done = receipt(request, ReceiptStatus.COMPLETED, counts=counts)
        return marker_state(subject, request.request_id), [done]
    if request.kind is PrivacyKind.UNSUPPRESS:
        counts = {Count.IDENTIFIERS_UNSUPPRESSED.value: 0}
        return state, [receipt(request, ReceiptStatus.COMPLETED, counts=counts)]
    return state, [receipt(request, ReceiptStatus.FAILED, reason=ReceiptReason.UNKNOWN_SUBJECT)]


def on_suppress(
    rules: IdentityRules, state: IdentifierState | None, command: Suppress
) -> tuple[IdentifierState | None, list[Output]]:
    owner = state.owner if state is not None else None
    if owner is not None and owner not in command.profiles:
        return state, []  # another person's since: a claim of it was never theirs to erase
    if not command.erase:
        if state is None or owner is None:
            return state, []
        state.status = IdentifierStatus.SUPPRESSED
        state.suppressed_by = command.request_id
        return state, []
    outputs: list[Output] = []
    if state is not None:
        # Profiles that were turned away by it or refused it remember its key: they forget it.
        others = (set(state.refused_by) | set(state.turned_away)) - set(command.profiles)
        outputs.extend(Forget(other, command.identifier) for other in sorted(others))
    return marker_state(command.identifier, command.request_id), outputs


def on_unsuppress(
    rules: IdentityRules, state: IdentifierState | None, command: Unsuppress
) -> tuple[IdentifierState | None, list[Output]]:
    if (
        state is not None
        and state.status is IdentifierStatus.SUPPRESSED
        and state.owner == command.profile_id
    ):
        state.status = IdentifierStatus.ACTIVE
        state.suppressed_by = None
    return state, []


# --- profile stage -----------------------------------------------------------------------------


def on_forget(
    rules: IdentityRules, state: ProfileState | None, command: Forget
) -> tuple[ProfileState | None, list[Output]]:
    if state is None:
        return None, []
    if state.status is ProfileStatus.MERGED and state.merged_into is not None:
        return state, [Forget(state.merged_into, command.identifier)]
    forget(state, command.identifier)
    return state, []


def forget(state: ProfileState, identifier: Identifier) -> None:
    """The profile lets go of an erased person's identifier it does not hold: its claim, its
    refusal, and the identifier in the events its history keeps (still its events, without
    it: what the same events without the person give)."""
    key = identifier.key
    if key in state.identifiers:
        return
    state.claimed.pop(key, None)
    state.refused.pop(key, None)
    events = state.history.events
    for event_id, event in events.items():
        if any(i.key == key for i in event.identifiers):
            kept = tuple(i for i in event.identifiers if i.key != key)
            events[event_id] = event.for_graph(kept)


def on_profile_request(
    rules: IdentityRules, state: ProfileState | None, command: ProfileRequest
) -> tuple[ProfileState | None, list[Output]]:
    request = command.request
    if state is None:
        return None, [receipt(request, ReceiptStatus.FAILED, reason=ReceiptReason.UNKNOWN_SUBJECT)]
    if state.status is ProfileStatus.MERGED and state.merged_into is not None:
        return state, [ProfileRequest(request, state.merged_into)]
    profile_id = state.profile_id
    if state.status is ProfileStatus.ERASED:
        if request.kind is not PrivacyKind.ERASE:
            return state, [
                receipt(request, ReceiptStatus.FAILED, profile_id, reason=ReceiptReason.ERASED)
            ]
        if state.erased_by == request.request_id:  # a second delivery: the same receipt
            counts = dict(state.erased_counts)
            return state, [receipt(request, ReceiptStatus.COMPLETED, profile_id, counts)]
        return state, [
            receipt(
                request, ReceiptStatus.COMPLETED, profile_id, reason=ReceiptReason.ALREADY_ERASED
            )
        ]
    at = request.requested_at
    if request.kind is PrivacyKind.ERASE:
        stub = _stub(state.profile_id, state.created_at, state.version, request.request_id, at)
        outputs = _erase_contents(rules, stub, state, request.request_id, at)
        outputs.append(_erased_change(stub, None, at))
        done = receipt(request, ReceiptStatus.COMPLETED, profile_id, stub.erased_counts)
        stub.erased_receipt = done.record
        outputs.append(done)
        return stub, outputs
    held = [Identifier(h.type, h.value) for _, h in sorted(state.identifiers.items())]
    if request.kind is PrivacyKind.SUPPRESS:
        state.suppressed_by = request.request_id
        outputs = [Suppress(i, request.request_id, (profile_id,), False, at) for i in held]
        counts = {Count.IDENTIFIERS_SUPPRESSED.value: len(held)}
    elif request.kind is PrivacyKind.UNSUPPRESS:
        state.suppressed_by = None
        outputs = [Unsuppress(i, request.request_id, profile_id, at) for i in held]
        counts = {Count.IDENTIFIERS_UNSUPPRESSED.value: len(held)}
    else:
        outputs = []
        counts = {Count.IDENTIFIERS.value: len(held), Count.TRAITS.value: len(state.traits)}
    outputs.append(receipt(request, ReceiptStatus.COMPLETED, profile_id, counts))
    return state, outputs


def _erase_contents(
    rules: IdentityRules, stub: ProfileState, erased: ProfileState, request_id: str, at: int
) -> list[Output]:
    """Everything `erased` holds goes: its identifiers (held or claimed) become markers, the
    profiles merged into it become stubs, each of its ids gets a tombstone. Counted in `stub`
    (what it erased before, from an earlier part of the person, is not counted again)."""
    profiles = sorted({erased.profile_id, *erased.absorbed, *erased.merged_from})
    owners = tuple(sorted({stub.profile_id, *profiles}))
    outputs: list[Output] = []
    linked = erased.linked()
    secret = rules.recognition_key
    digests = {identifier_digest(secret, key): t for key, t in linked.items()}
    new_identifiers = len(digests.keys() - stub.erased_linked.keys())
    new_profiles = len(set(profiles) - stub.absorbed)
    stub.erased_linked.update(digests)
    # The other side of a split refuses this side's identifiers by its ban (`ban:<id>`), which
    # the identifiers do not record as a refusal: that profile is told to forget them too.
    banned_with = {s for b in erased.bans.values() for s in (b.left_profile, b.right_profile)}
    for key, identifier_type in sorted(linked.items()):
        identifier = Identifier(identifier_type, key[len(identifier_type) + 1 :])
        outputs.append(Suppress(identifier, request_id, owners, True, at))
        outputs.extend(Forget(other, identifier) for other in sorted(banned_with - set(owners)))
    for profile_id in profiles:
        if profile_id != stub.profile_id:
            outputs.append(EraseMerged(profile_id, request_id, at, stub.profile_id))
        outputs.append(ProfileTombstone(profile_id))
    stub.absorbed.update(profiles)
    for waiting in erased.deferred:
        outputs.extend(at_erased(rules, stub, waiting)[1])
    counts = stub.erased_counts
    for name, added in (
        (Count.PROFILES_ERASED, new_profiles),
        (Count.IDENTIFIERS_SUPPRESSED, new_identifiers),
        (Count.RECORDS_REMOVED, new_profiles + new_identifiers),
    ):
        counts[name.value] = counts.get(name.value, 0) + added
    return outputs


def _erased_change(stub: ProfileState, other: str | None, at: int) -> IdentityChangeEmission:
    """The `erased` IdentityChange: ids and counts, no identifier values."""
    return IdentityChangeEmission.of(
        ChangeKind.ERASED, stub.profile_id, other, [], None, None, at, counts=stub.erased_counts
    )


def at_erased(
    rules: IdentityRules, stub: ProfileState, command: ProfileCommand
) -> tuple[ProfileState, list[Output]]:
    """A command that reaches an erased profile (late, or deferred when it was erased)."""
    request_id = stub.erased_by or ""
    if isinstance(command, Apply):
        # The event found the person through identifiers[probe], which is being suppressed.
        return stub, resolve_without(rules, command.event, command.probe, create=False)
    if isinstance(command, Attach):
        suppress = Suppress(command.identifier, request_id, (stub.profile_id,), True, command.at)
        if command.move:  # still its old owner's (see Attach): the person's first
            return stub, [MoveOwner(command.identifier, stub.profile_id, command.epoch), suppress]
        return stub, [suppress]
    if isinstance(command, MergeRequest | MergeOffer | OfferRedirected):
        return stub, _join_erased(stub, command)
    if isinstance(command, Absorb):
        if stub.erased_with is not None:
            via, event_id, at = command.via, command.event_id, command.at
            return stub, [Absorb(stub.erased_with, command.loser, via, event_id, at)]
        # A merge accepted just before the erasure, or a racing merge that accepted this
        # stub's offer: the absorbed profile is the person too.
        loser = command.loser
        if loser.profile_id in stub.absorbed:
            return stub, []
        outputs = _erase_contents(rules, stub, loser, request_id, command.at)
        outputs.append(_erased_change(stub, loser.profile_id, command.at))
        if stub.erased_receipt is not None:  # the receipt counts it: sent again, compacted
            counts = dict(sorted(stub.erased_counts.items()))
            stub.erased_receipt = {**stub.erased_receipt, "counts": counts}
            outputs.append(PrivacyReceiptEmission(stub.erased_receipt))
        return stub, outputs
    return stub, []  # MergeDeclined: the other side would not have joined the person


def _join_erased(
    stub: ProfileState, command: MergeRequest | MergeOffer | OfferRedirected
) -> list[Output]:
    """A merge with the person reached their erased stub: the stub offers itself to the other
    profile, which judges the offer as it would the person's (`MergeOffer.winner_erased`)."""
    via, event_id, at = command.via, command.event_id, command.at
    manual = via.type == MANUAL_LINK  # an operator's merge with an erased person erases nobody
    outputs: list[Output] = []
    if isinstance(command, MergeRequest):
        other = command.loser if command.winner == stub.profile_id else command.winner
        if manual:
            return [Forget(other, via)]
    elif isinstance(command, MergeOffer):
        if command.winner_erased:
            return []  # both are erased: nothing is left to join
        other = command.winner
        # The winner waits for this answer before it can take the stub's offer.
        declined = MergeDeclined(
            other, command.loser, refusals.ERASED, via, event_id, at, command.offer
        )
        outputs.append(declined)
    else:
        other = command.successor  # the profile this stub offered itself to merged there
    if manual:
        return outputs
    if stub.erased_with is not None:
        outputs.append(MergeRequest(stub.erased_with, other, via, event_id, at))
        return outputs
    linked = tuple(sorted(stub.erased_linked.items()))
    outputs.append(
        MergeOffer(stub.profile_id, other, linked, via, event_id, at, winner_erased=True)
    )
    return outputs


def linked_for_offer(
    rules: IdentityRules, loser: ProfileState, offer: MergeOffer
) -> dict[str, str]:
    """What the loser of `offer` holds or has claimed (key -> type), keyed like the winner's
    side: by digest when the winner is an erased profile, so the two are joined exactly."""
    linked = loser.linked()
    if not offer.winner_erased:
        return linked
    secret = rules.recognition_key
    return {identifier_digest(secret, key): t for key, t in linked.items()}


def on_erase_merged(
    rules: IdentityRules, state: ProfileState | None, command: EraseMerged
) -> tuple[ProfileState, list[Output]]:
    if state is not None and state.status is ProfileStatus.ERASED:
        return state, []
    created_at = state.created_at if state is not None else command.at
    version = state.version if state is not None else 0
    stub = _stub(command.profile_id, created_at, version, command.request_id, command.at)
    stub.erased_with = command.erased_with
    return stub, []


def _stub(profile_id: str, created_at: int, version: int, request_id: str, at: int) -> ProfileState:
    return ProfileState(
        profile_id,
        created_at=created_at,
        status=ProfileStatus.ERASED,
        version=version + 1,
        erased_by=request_id,
        cause_kind="erased",
        updated_at=at,
    )
