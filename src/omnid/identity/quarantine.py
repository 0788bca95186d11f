"""Quarantine of generic values (the store's phone typed at the till, kasse@filiale.de on every
walk-in receipt, a family card): caught as they happen, the merges they made undone, and held
for an operator to release or block. Pure handlers of the graph protocol.

Detection is at the identifier. Every claim of it by a known profile (one that holds a strong
identifier of its own) and every known person its owner took in through it (`Sighting`) is a
claimant; when `quarantine_after` distinct claimants fall within `quarantine_window_days` of
the newest claim (event time), the identifier is quarantined: it links nothing more (events
that carry it resolve through their other identifiers, claims of it are answered with a
`Forget`), and its owner is told to `Unlink` it.

The owner keeps holding it (events carrying nothing else still count there), marks it as
linking nothing, and undoes the glue: its identifiers are grouped by the evidence that joins
them without the quarantined one (events of the history, each identifier's `linked_by`, the
merges not made through it); every group of a known person that only the quarantined identifier
joined to the rest leaves for a profile of its own with its events (the split machinery, no
ban). A merge that also had another link keeps its group joined. Messages still in flight about
what left (`moved_out`) are sent on to where it went.

`QuarantineRelease` lets the identifier link again (the holder asks each recorded claimant to
merge through it, as the claims did); `QuarantineBlock` keeps it out for good: the identifier
becomes a suppression marker (stored under an HMAC of its key, `block:<request id>`) and its
holder lets go of it.
"""

from __future__ import annotations

import dataclasses
import itertools

from omnid.identity import history, operations, privacy, refusals
from omnid.identity.commands import (
    Apply,
    Attach,
    Claim,
    IdentityChangeEmission,
    MergeDeclined,
    MergeOffer,
    MergeRequest,
    MoveOwner,
    Output,
    QuarantineBlock,
    QuarantineRelease,
    Relink,
    Resolve,
    Sighting,
    SplitOff,
    Unlink,
    touch,
)
from omnid.identity.intake import in_resolution_order
from omnid.identity.model import Event, EventDigest, Identifier, event_digest
from omnid.identity.privacy import BLOCK_PREFIX
from omnid.identity.refusals import RefusalKind
from omnid.identity.rendering import ChangeKind
from omnid.identity.requests import Forget
from omnid.identity.rules import IdentityRules
from omnid.identity.state import (
    TURNED_AWAY_WINDOW,
    Claimant,
    IdentifierState,
    IdentifierStatus,
    ProfileState,
    identifier_digest,
    remember,
    trim,
)
from omnid.identity.ulid import profile_id_for

# Refusals under which a profile links nothing through an identifier it does not hold.
UNLINKING_KINDS = (RefusalKind.QUARANTINED, RefusalKind.QUARANTINED_LINK)
SEEN_PREFIX = "seen:"
# Claimants an identifier keeps (the newest by event time): enough to count any threshold and
# to ask them again on a release.
CLAIMANTS_KEPT = 64


def _key_identifier(key: str) -> Identifier:
    identifier_type, _, value = key.partition(":")
    return Identifier(identifier_type, value)


# --- identity stage: detection -----------------------------------------------------------------


def _counted(rules: IdentityRules, state: IdentifierState) -> list[Claimant]:
    """The claimants that count now: those within the window of the newest claim."""
    quarantine = rules.quarantine(state.identifier.type)
    if quarantine is None or not state.claimants:
        return []
    window = quarantine[1]
    newest = max(claimant.at for claimant in state.claimants.values())
    return [c for c in state.claimants.values() if c.at >= newest - window]


def _record(
    rules: IdentityRules,
    state: IdentifierState,
    slot: str,
    claimant: Claimant,
    event_id: str,
) -> list[Output] | None:
    """Counts a known claimant; the quarantine's outputs when this claim crosses the
    threshold, else None."""
    quarantine = rules.quarantine(state.identifier.type)
    if quarantine is None:
        return None
    earlier = state.claimants.get(slot)
    if earlier is None or earlier.at < claimant.at:
        state.claimants[slot] = claimant
    if len(state.claimants) > CLAIMANTS_KEPT:
        oldest = min(state.claimants, key=lambda s: (state.claimants[s].at, s))
        del state.claimants[oldest]
    if state.status is not IdentifierStatus.ACTIVE or state.released_by is not None:
        return None
    counted = _counted(rules, state)
    if len(counted) < quarantine[0]:
        return None
    return _quarantine(state, counted, event_id, claimant.at)


def _quarantine(
    state: IdentifierState, counted: list[Claimant], event_id: str, at: int
) -> list[Output]:
    state.status = IdentifierStatus.QUARANTINED
    state.quarantined_at = at
    identifier = state.identifier
    change = IdentityChangeEmission.of(
        ChangeKind.QUARANTINED,
        state.owner or "",
        None,
        [identifier],
        event_id,
        refusals.quarantined(identifier.type),
        at,
        counts={"claimants": len(counted)},
        quarantine={
            "since": at,
            "channels": sorted({c.channel for c in counted if c.channel}),
            "sources": sorted({c.source for c in counted if c.source}),
        },
    )
    outputs: list[Output] = [change]
    if state.owner is not None:
        outputs.append(Unlink(state.owner, identifier, event_id, at))
    return outputs


def on_claim(rules: IdentityRules, state: IdentifierState, command: Claim) -> list[Output] | None:
    """A claim's part in quarantine (called before the claim links): the outputs that answer
    it when the identifier is (now) quarantined, None when the claim goes on as usual."""
    crossed: list[Output] = []
    if command.known:
        claimant = Claimant(command.at, command.channel, command.source)
        crossed = _record(rules, state, command.profile_id, claimant, command.event_id) or []
    if state.status is not IdentifierStatus.QUARANTINED:
        return None
    if command.profile_id == state.owner:
        return crossed
    # Links nothing: the claimant refuses it and undoes what it joined there too; a release
    # asks it again (known or not).
    state.turned_away.pop(command.profile_id, None)
    remember(state.turned_away, command.profile_id, TURNED_AWAY_WINDOW)
    unlink = Unlink(command.profile_id, command.identifier, command.event_id, command.at)
    return [*crossed, unlink]


def founded(rules: IdentityRules, state: IdentifierState, event: Event) -> None:
    """The event founds a profile at this identifier: a known person it brings is counted
    here (the profile's Sightings report the people who come later)."""
    weak = rules.weak_types
    key = state.identifier.key
    strong = [i.key for i in event.identifiers if i.key != key and i.type not in weak]
    if strong:
        slot = SEEN_PREFIX + identifier_digest(rules.recognition_key, min(strong))
        _record(rules, state, slot, Claimant(event.event_time, event.channel, event.source), "")


def on_sighting(
    rules: IdentityRules, state: IdentifierState | None, command: Sighting
) -> tuple[IdentifierState | None, list[Output]]:
    if state is None or state.status is IdentifierStatus.SUPPRESSED:
        return state, []
    claimant = Claimant(command.at, command.channel, command.source)
    return state, _record(rules, state, command.slot, claimant, command.event_id) or []


def resolve_past(state: IdentifierState, command: Resolve) -> list[Output] | None:
    """An event reaching a quarantined identifier resolves through its other identifiers; an
    event with nothing else counts at the identifier's owner (None: resolve as usual)."""
    event = command.event
    if len(event.identifiers) == 1:
        return None
    return [_past(event, command.probe, command.create, command.passed)]


def _past(event: Event, probe: int, create: bool, passed: tuple[Identifier, ...]) -> Resolve:
    """The event resolved again without its quarantined identifier `probe`, which it still
    carries along for the profile that takes it to claim."""
    return privacy.resolve_rest(event, probe, create, (*passed, event.identifiers[probe]))


def whole(rules: IdentityRules, event: Event, passed: tuple[Identifier, ...]) -> Event:
    """The event with the quarantined identifiers it passed on its way put back."""
    if not passed:
        return event
    return event.for_graph(tuple(in_resolution_order(rules, (*event.identifiers, *passed))))


# --- identity stage: review --------------------------------------------------------------------


def on_release(
    rules: IdentityRules, state: IdentifierState | None, command: QuarantineRelease
) -> tuple[IdentifierState | None, list[Output]]:
    if state is not None and state.released_by == command.request_id:
        return state, []  # a second delivery
    if state is None or state.status is not IdentifierStatus.QUARANTINED:
        return state, [_refused(state, command)]
    state.status = IdentifierStatus.ACTIVE
    state.released_by = command.request_id
    identifier = command.identifier
    owner = state.owner or ""
    outputs: list[Output] = [
        IdentityChangeEmission.of(
            ChangeKind.QUARANTINE_RELEASED,
            owner,
            None,
            [identifier],
            command.request_id,
            None,
            command.at,
            command.operator,
        )
    ]
    profiles = {s for s in state.claimants if not s.startswith(SEEN_PREFIX)}
    claimants = tuple(sorted(profiles | set(state.turned_away)))
    if state.owner is not None:
        outputs.append(Relink(owner, identifier, claimants, command.request_id, command.at))
    return state, outputs


def on_block(
    rules: IdentityRules, state: IdentifierState | None, command: QuarantineBlock
) -> tuple[IdentifierState | None, list[Output]]:
    blocked_by = f"{BLOCK_PREFIX}{command.request_id}"
    if state is not None and state.suppressed_by == blocked_by:
        return state, []  # a second delivery
    if state is None or state.status is not IdentifierStatus.QUARANTINED:
        return state, [_refused(state, command)]
    identifier = command.identifier
    outputs: list[Output] = [
        IdentityChangeEmission.of(
            ChangeKind.QUARANTINE_BLOCKED,
            state.owner or "",
            None,
            [identifier],
            command.request_id,
            None,
            command.at,
            command.operator,
        )
    ]
    if state.owner is not None:
        outputs.append(Unlink(state.owner, identifier, command.request_id, command.at, drop=True))
    # Profiles that claimed it or were refused it remember its key: they forget it.
    others = {s for s in state.claimants if not s.startswith(SEEN_PREFIX)}
    others |= state.refused_by | set(state.turned_away)
    others.discard(state.owner or "")
    outputs.extend(Forget(other, identifier) for other in sorted(others))
    return privacy.marker_state(identifier, blocked_by), outputs


def _refused(
    state: IdentifierState | None, command: QuarantineRelease | QuarantineBlock
) -> IdentityChangeEmission:
    return IdentityChangeEmission.of(
        ChangeKind.QUARANTINE_REFUSED,
        state.owner or "" if state is not None else "",
        None,
        [command.identifier],
        command.request_id,
        refusals.NOT_QUARANTINED,
        command.at,
        command.operator,
    )


# --- profile stage -----------------------------------------------------------------------------


def sightings(rules: IdentityRules, state: ProfileState, event: Event, probe: int) -> list[Output]:
    """A Sighting when an event applied here was found through an identifier with a quarantine
    threshold and brings a known person new to this profile (strong identifiers it neither
    holds nor has claimed). Call before the event's claims are made."""
    found = event.identifiers[probe]
    if not state.applied or rules.quarantine(found.type) is None:
        return []  # a profile the event itself founds was counted at the identifier
    weak = rules.weak_types
    strong = [i.key for i in event.identifiers if i.key != found.key and i.type not in weak]
    linked = state.linked()
    if not strong or any(key in linked for key in strong):
        return []
    slot = SEEN_PREFIX + identifier_digest(rules.recognition_key, min(strong))
    return [Sighting(found, slot, event.event_id, event.event_time, event.channel, event.source)]


def strong_keys(rules: IdentityRules, state: ProfileState, event: Event) -> set[str]:
    """The strong identifiers the profile holds, has claimed or takes from `event`: a claim of
    a key is known when this set holds another key."""
    weak = rules.weak_types
    strong = {k for k, t in state.linked().items() if t not in weak}
    strong.update(i.key for i in event.identifiers if i.type not in weak)
    return strong


def links_nothing(state: ProfileState, via: Identifier) -> bool:
    """Whether a merge through `via` must not happen here: it is quarantined, or this profile
    claimed it only through a quarantined identifier."""
    held = state.identifiers.get(via.key)
    if held is not None:
        return held.quarantined
    refused = state.refused.get(via.key)
    return refused is not None and refused.kind in UNLINKING_KINDS


def _quarantined_here(state: ProfileState, via: Identifier) -> bool:
    """`via` is quarantined (held so, or refused as such), not merely claimed here through a
    quarantined identifier."""
    held = state.identifiers.get(via.key)
    if held is not None:
        return held.quarantined
    refused = state.refused.get(via.key)
    return refused is not None and refused.kind is RefusalKind.QUARANTINED


def stop_request(state: ProfileState, command: MergeRequest) -> list[Output]:
    """A merge asked through an identifier that links nothing here (asked before it did):
    dropped. A quarantined one the other side refuses too, as a claim of it is answered; one
    this profile claimed only through a quarantined identifier stays the other side's claim,
    answered when the identifier gets a profile of its own (it asks its turned-away claimants
    again)."""
    if not _quarantined_here(state, command.via):
        return []
    other = command.loser if command.winner == state.profile_id else command.winner
    return [Unlink(other, command.via, command.event_id, command.at)]


def stop_offer(state: ProfileState, command: MergeOffer) -> list[Output]:
    """An offer through an identifier that links nothing here: declined, and a quarantined one
    the winner then refuses too (after the decline has freed it). One this profile claimed
    only through a quarantined identifier is declined `quarantined_link`: the winner keeps its
    own claim of it (its events may join it directly), answered when the identifier gets a
    profile of its own, as `stop_request` leaves it."""
    quarantined = _quarantined_here(state, command.via)
    declined: list[Output] = [
        MergeDeclined(
            command.winner,
            state.profile_id,
            refusals.QUARANTINED if quarantined else refusals.QUARANTINED_LINK,
            command.via,
            command.event_id,
            command.at,
            command.offer,
        )
    ]
    if quarantined:
        declined.append(Unlink(command.winner, command.via, command.event_id, command.at))
    return declined


def apply_past(rules: IdentityRules, state: ProfileState, command: Apply) -> list[Output] | None:
    """An event found through an identifier that links nothing here (in flight when it was
    quarantined, or when only a quarantined identifier had joined it to this profile): it
    resolves again, without the quarantined identifier, or at the refused identifier's own
    profile. None: apply as usual (an event with nothing but the quarantined identifier counts
    at its holder)."""
    event = command.event
    found = event.identifiers[command.probe]
    if found.key in state.released and resolution_digest(event, (found,)) in state.passed_on:
        return []  # a second delivery: resolved without the value before its release
    held = state.identifiers.get(found.key)
    refused = state.refused.get(found.key) if held is None else None
    if (held is not None and held.quarantined) or (
        refused is not None and refused.kind is RefusalKind.QUARANTINED
    ):
        if len(event.identifiers) == 1:
            return None
        remember(state.passed_on, resolution_digest(event, (found,)), rules.applied_event_window)
        return [_past(event, command.probe, False, command.passed)]
    if refused is not None and refused.kind is RefusalKind.QUARANTINED_LINK:
        moved_to = state.moved_out.get(found.key)
        if moved_to is not None:
            # It left with a person an undo moved away, and its Attach went after them
            # (`moved_attach`): it may point here until that profile moves it, so resolving
            # again would come back here, round and round within one worker's batch (the
            # Attach waiting in a topic meanwhile). Sent there, behind that Attach.
            return [dataclasses.replace(command, profile_id=moved_to)]
        return [Resolve(event, command.probe, create=True, passed=command.passed)]
    return None


def resolution_digest(event: Event, passed: tuple[Identifier, ...]) -> EventDigest:
    """What remembers one resolution of `event`: the event's digest, or, once it resolves again
    without the quarantined identifiers `passed`, a digest of that resolution. Its own, since
    the new resolution probes identifiers the first one probed already (an identifier that
    took the event's digest for a second delivery dropped it there, counted nowhere), and a
    profile that sends it on remembers it apart from an event it sent to its anchor (a copy
    found again through a later probe is dropped, the anchor counts it), while this one may
    well come back, through a later identifier the profile holds, and count there."""
    if not passed:
        return event.digest
    return event_digest("\x00".join((event.event_id, *(identifier.key for identifier in passed))))


def moved_attach(state: ProfileState, command: Attach) -> list[Output] | None:
    """An identifier this profile claimed for a person who has left with the undone glue:
    it goes to that person's profile, which moves it to itself, in a new ownership epoch."""
    key = command.identifier.key
    moved_to = state.moved_out.get(key)
    if moved_to is None:
        return None
    outputs: list[Output] = [dataclasses.replace(command, profile_id=moved_to, move=True)]
    if key in state.claimed:
        # Claimed here again since it left (by an event that joins it directly): that claim
        # found this profile its owner still, and asked nothing. It meets the new owner now.
        winner, loser = sorted((state.profile_id, moved_to))
        outputs.append(
            MergeRequest(winner, loser, command.identifier, command.event_id, command.at)
        )
    return outputs


def on_unlink(
    rules: IdentityRules, state: ProfileState, command: Unlink
) -> tuple[ProfileState, list[Output]]:
    if state.awaiting is not None:
        # Mid-merge the profile's identifiers are about to change: undo what it ends up with.
        state.deferred.append(command)
        return state, []
    key = command.identifier.key
    if key in state.released:
        return state, []  # sent before the release, which this profile has had since
    held = state.identifiers.get(key)
    if held is None:
        moved_to = operations.moved_to(rules.recognition_key, state, command.identifier)
        if moved_to is not None:
            # Moved on with a person whose glue was undone (or by a split): theirs to unlink.
            return state, [dataclasses.replace(command, profile_id=moved_to)]
        if command.drop:
            return state, []  # a block's: already dropped
        # A claimant: it refuses the identifier, and its events through it join nothing here.
        state.claimed.pop(key, None)
        state.refused[key] = refusals.QUARANTINED
    elif not held.quarantined:
        state.identifiers[key] = dataclasses.replace(held, quarantined=True)
    outputs = _undo(rules, state, command)
    if command.drop:
        del state.identifiers[key]
        state.claimed.pop(key, None)
        # Still known here as quarantined (its events stay): what only it joined stays apart
        # when a later release regroups the claims it kept out.
        state.refused[key] = refusals.QUARANTINED
        if not state.identifiers:
            outputs.extend(_rehome(rules, state, key))
        outputs.append(touch(state, "identifier_released", command.event_id, command.at))
    return state, outputs


def _rehome(rules: IdentityRules, state: ProfileState, key: str) -> list[Output]:
    """A block that leaves its holder nothing: the holder's events that carry another
    identifier resolve again without the blocked one (each other identifier was refused here,
    for a limit, a weak link, a quarantine's glue: its own profile is where the event belongs);
    those with nothing else stay, the block's to keep out (counted as suppressed elsewhere). The
    events leave this profile's counts, and an event still on its way here through the blocked
    identifier resolves again without it (`apply_past`), so each is counted once."""
    events = list(state.history.events.values())
    rests = [tuple(i for i in event.identifiers if i.key != key) for event in events]
    if not any(rests):
        return []
    history.recompute(rules, state, [e for e, rest in zip(events, rests, strict=True) if not rest])
    return [
        Resolve(event.for_graph(rest), 0, create=True)
        for event, rest in zip(events, rests, strict=True)
        if rest
    ]


def _unlinking(state: ProfileState) -> set[str]:
    """The quarantined identifiers this profile knows of: held ones, and claimed ones it was
    told to refuse."""
    held = {k for k, h in state.identifiers.items() if h.quarantined}
    return held | {k for k, r in state.refused.items() if r.kind is RefusalKind.QUARANTINED}


def _groups(rules: IdentityRules, state: ProfileState) -> tuple[list[set[str]], set[str]]:
    """The strong identifiers (held or claimed) grouped by the evidence that joins them without
    the quarantined ones, and the keys that the quarantined ones joined to something."""
    weak = rules.weak_types
    excluded = _unlinking(state)
    linked = [k for k, t in state.linked().items() if t not in weak and k not in excluded]
    parent = {k: k for k in linked}
    # A strong identifier of the events here that the profile does not hold (released for a
    # limit, say) still joins what it came with: the events say the same person had both.
    for event in state.history.events.values():
        for identifier in event.identifiers:
            if identifier.type not in weak and identifier.key not in excluded:
                parent.setdefault(identifier.key, identifier.key)

    def find(key: str) -> str:
        while parent[key] != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    def join(a: str | None, b: str | None) -> None:
        if a is not None and b is not None and a in parent and b in parent:
            parent[find(a)] = find(b)

    touched: set[str] = set()
    for key, held in state.identifiers.items():
        if held.linked_by in excluded:
            touched.add(key)
        join(key, held.linked_by)
    for merge in state.merges:
        if merge.via in excluded and merge.linked_by is not None:
            touched.add(merge.linked_by)
        join(merge.via, merge.linked_by)
    for event in state.history.events.values():
        keys = [i.key for i in event.identifiers if i.key in parent]
        if any(i.key in excluded for i in event.identifiers):
            touched.update(keys)
        for a, b in itertools.pairwise(keys):
            join(a, b)
    groups: dict[str, set[str]] = {}
    for key in linked:
        groups.setdefault(find(key), set()).add(key)
    # What a quarantined identifier joined through an identifier not held here is joined too.
    glued = {find(k) for k in touched if k in parent}
    touched.update(k for root, group in groups.items() if root in glued for k in group)
    return list(groups.values()), touched


def _leaving(
    rules: IdentityRules, state: ProfileState, kept_here: frozenset[str] = frozenset()
) -> tuple[list[set[str]], list[set[str]]]:
    """The profile's groups (see _groups) and those that only quarantined identifiers join to
    the group that stays (the one holding the profile's oldest strong identifier). A leaving
    group it has only claimed so far, by events that came through a quarantined identifier, is
    refused when the claims are answered (no person to split off yet). One that an event here
    carries without a quarantined identifier is a person of its own, whose event came through
    the group's identifier (it pointed here, its Attach on the way): it leaves with its claims
    like a held group. The groups returned as leaving are those that leave. `kept_here`: keys
    held here only because they were quarantined when an undo grouped (see on_relink), whose
    group the glue joined even if no evidence left here says so."""
    groups, touched = _groups(rules, state)
    touched |= kept_here
    weak = rules.weak_types
    held_strong = [(h.added_at, k) for k, h in state.identifiers.items() if h.type not in weak]
    if not held_strong:
        return groups, []
    # When the oldest is the quarantined one (a profile founded on the store's phone), every
    # person it joined leaves.
    oldest = min(held_strong)[1]
    groups.sort(key=min)
    excluded = _unlinking(state)
    # The keys of events that carry no quarantined identifier: what joins them is not the glue.
    direct = {
        i.key
        for event in state.history.events.values()
        if not any(i.key in excluded for i in event.identifiers)
        for i in event.identifiers
    }
    leaving = [g for g in groups if g & touched and oldest not in g]
    for group in [g for g in leaving if not g & (set(state.identifiers) | direct)]:
        for key in group:
            state.claimed.pop(key, None)
            state.refused[key] = refusals.QUARANTINED_LINK
    return groups, [g for g in leaving if g & (set(state.identifiers) | direct)]


def _reclaim(rules: IdentityRules, state: ProfileState, event_id: str, at: int) -> list[Output]:
    """After a release: the claims refused because only quarantined identifiers joined them
    are judged again, and those the profile's evidence now joins to it without one are made
    again (the identifier's owner then merges with this profile, as before the quarantine).
    Only those its events carry: an undo's or a split's new profile copies the refusals of the
    profile it left, whose events (and claims) stayed there."""
    carried = {i.key for event in state.history.events.values() for i in event.identifiers}
    refused = [
        k
        for k, r in state.refused.items()
        if r.kind is RefusalKind.QUARANTINED_LINK and k in carried
    ]
    for key in refused:
        del state.refused[key]
        state.claimed[key] = _key_identifier(key).type
    # Called for what it refuses: the claims that only a quarantined identifier still joins
    # (the groups it returns are the undo's business).
    _leaving(rules, state)
    # Not counted towards the identifier's own quarantine again: the event's claim was.
    return [
        Claim(_key_identifier(k), state.profile_id, event_id, at, again=True)
        for k in refused
        if k in state.claimed
    ]


def joined_directly(state: ProfileState, event: Event) -> set[str]:
    """An event applied here (found through an identifier that links) joins its identifiers to
    this profile: the claims refused because only a quarantined identifier had joined them are
    lifted, to be made again (the keys returned)."""
    lifted = set()
    for identifier in event.identifiers:
        refused = state.refused.get(identifier.key)
        if refused is not None and refused.kind is RefusalKind.QUARANTINED_LINK:
            del state.refused[identifier.key]
            lifted.add(identifier.key)
    return lifted


def _undo(
    rules: IdentityRules,
    state: ProfileState,
    command: Unlink,
    kept_here: frozenset[str] = frozenset(),
) -> list[Output]:
    """Splits off every group of known identifiers that only quarantined identifiers joined to
    the group that stays (`kept_here`: see _leaving)."""
    groups, leaving = _leaving(rules, state, kept_here)
    if not leaving:
        return []
    excluded = _unlinking(state)
    request_id = f"unlink:{command.identifier.key}:{command.at}"
    sides, clusters = _weak_sides(rules, state, groups, excluded)
    outputs: list[Output] = []
    for group in leaving:
        # The weak identifiers only this person's events carry go too; one that other events
        # carry as well stays, and the new profile claims it (a device shared by two known
        # people never joins them: the merge handshake declines that).
        index = groups.index(group)
        shared = {w for w, where in sides.items() if index in where and clusters[w] != {index}}
        named = group | {w for w, where in clusters.items() if where == {index}}
        new_id = profile_id_for(
            command.at, _key_identifier(min(group)), f"unlink:{state.profile_id}:{request_id}"
        )
        anchors = set(state.linked()) - excluded
        new, moves = operations.carve(
            rules, state, sorted(named), new_id, anchors, request_id, command.at
        )
        linked = state.linked()
        sends: list[MoveOwner | Claim] = list(moves)
        for key in sorted(k for k in new.claimed if k in named):
            # Claimed here, not held yet: the answer to this profile's claim may be settled
            # here (a decline it had with the owner), so the new side asks for itself.
            sends.append(Claim(_key_identifier(key), new_id, command.event_id, command.at))
        for key in sorted(shared):
            # Its events here carry it too: it claims it like any profile would.
            new.claimed[key] = linked[key]
            sends.append(
                Claim(_key_identifier(key), new_id, command.event_id, command.at, known=True)
            )
        # The new side is a claimant of the quarantined identifier: a release links it again.
        # So it is of every other quarantined one its events carry (held here, they joined
        # nothing when the groups were made; released later, they join the two sides again).
        carried = {i.key: i for e in new.history.events.values() for i in e.identifiers}
        unlinked = sorted((excluded & set(carried)) - {command.identifier.key})
        for identifier in [command.identifier, *(carried[k] for k in unlinked)]:
            sends.append(Claim(identifier, new_id, command.event_id, command.at, known=True))
        for key in named:
            state.moved_out[key] = new_id
        # What else the person's events carry (refused here, say) went with them too: a merge
        # through it still on its way here belongs with them.
        for event in new.history.events.values():
            for identifier in event.identifiers:
                key = identifier.key
                if key not in state.linked() and key not in excluded:
                    state.moved_out.setdefault(key, new_id)
        trim(state.moved_out, operations.MOVED_OUT_WINDOW)
        outputs.append(SplitOff(new, request_id, command.at, tuple(sends)))
        outputs.append(
            IdentityChangeEmission.of(
                ChangeKind.SPLIT,
                state.profile_id,
                new_id,
                [_key_identifier(k) for k in sorted(named) if k in new.identifiers],
                command.event_id,
                refusals.quarantined(command.identifier.type),
                command.at,
            )
        )
    outputs.append(touch(state, "split", command.event_id, command.at))
    return outputs


def _weak_sides(
    rules: IdentityRules, state: ProfileState, groups: list[set[str]], excluded: set[str]
) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """Per weak identifier held or claimed: the groups (indexes) whose events carry it (one no
    such event carries: where its evidence, `linked_by`, came from), and the groups of its
    cluster, the weak identifiers that events without a strong identifier join to it (such an
    event goes where its weak identifiers go, so they go or stay together)."""
    weak = rules.weak_types
    group_of = {key: index for index, group in enumerate(groups) for key in group}
    linked_weak = {k for k, t in state.linked().items() if t in weak and k not in excluded}
    sides: dict[str, set[int]] = {key: set() for key in linked_weak}
    cluster = {key: key for key in linked_weak}

    def find(key: str) -> str:
        while cluster[key] != key:
            cluster[key] = cluster[cluster[key]]
            key = cluster[key]
        return key

    for event in state.history.events.values():
        keys = [i.key for i in event.identifiers]
        where = {group_of[k] for k in keys if k in group_of}
        mine = [k for k in keys if k in sides]
        for key in mine:
            sides[key] |= where
        if not where:
            for a, b in itertools.pairwise(mine):
                cluster[find(a)] = find(b)
    for key in sorted(linked_weak):
        held = state.identifiers.get(key)
        linked_by = held.linked_by if held is not None else None
        if not sides[key] and linked_by in group_of:
            sides[key] = {group_of[linked_by]}
    of_cluster: dict[str, set[int]] = {}
    for key in linked_weak:
        of_cluster.setdefault(find(key), set()).update(sides[key])
    return sides, {key: of_cluster[find(key)] for key in linked_weak}


def note_release(
    rules: IdentityRules, state: ProfileState, command: MergeRequest | MergeOffer
) -> list[Output]:
    """A merge asked through an identifier released from quarantine: it links here again,
    even if the release (the holder's Relink) has not reached this profile yet."""
    if not command.released:
        return []
    return _relinked(rules, state, command.via.key, command.event_id, command.at)


def _relinked(
    rules: IdentityRules, state: ProfileState, key: str, event_id: str, at: int
) -> list[Output]:
    """The identifier `key` links here again; the first time the profile hears of it, the
    claims only quarantined identifiers kept out are made again."""
    first = key not in state.released
    remember(state.released, key, operations.MOVED_OUT_WINDOW)
    held = state.identifiers.get(key)
    if held is not None and held.quarantined:
        state.identifiers[key] = dataclasses.replace(held, quarantined=False)
    refused = state.refused.get(key) if held is None else None
    claimed_again = refused is not None and refused.kind is RefusalKind.QUARANTINED
    if claimed_again and not any(
        i.key == key for event in state.history.events.values() for i in event.identifiers
    ):
        # The events that claimed it here left (with an undo of another quarantined
        # identifier): nothing here joins it any more, and a merge through it is refused.
        state.refused[key] = refusals.QUARANTINED_LINK
        claimed_again = False
    elif claimed_again:
        # Claimed here again, as before the quarantine, unless only another quarantined
        # identifier joins it to this profile (its events here came through one): the
        # grouping refuses that claim again, as `quarantined_link`.
        del state.refused[key]
        state.claimed[key] = _key_identifier(key).type
    if first:
        return _reclaim(rules, state, event_id, at)
    if claimed_again:
        _leaving(rules, state)
    return []


def on_relink(
    rules: IdentityRules, state: ProfileState, command: Relink
) -> tuple[ProfileState, list[Output]]:
    """The release at the holder: the identifier links here again, and each recorded claimant
    is asked to merge through it (the request says the identifier is released, so a claimant
    that refuses it lifts that first). Deferred behind a merge like the Unlink it answers, so
    the two keep their order; an Unlink that comes later anyway is known to be stale."""
    if state.awaiting is not None:
        state.deferred.append(command)
        return state, []
    outputs = _relinked(rules, state, command.identifier.key, command.request_id, command.at)
    others = sorted(_unlinking(state))
    if others:
        # An undo of another quarantined identifier here grouped without this one, which
        # stayed with the group that stayed, joined to it perhaps only through the other: it
        # links again now, so it is grouped again, and leaves (with its claimants' merges) if
        # only the other joins it here. Joined perhaps through a person who left with that
        # undo, taking the evidence along: nothing here says what joined it, so it leaves
        # unless evidence here joins it to the group that stays.
        undo = Unlink(state.profile_id, _key_identifier(others[0]), command.request_id, command.at)
        outputs.extend(_undo(rules, state, undo, frozenset({command.identifier.key})))
    for claimant in command.claimants:
        if claimant != state.profile_id:
            winner, loser = sorted((state.profile_id, claimant))
            outputs.append(
                MergeRequest(
                    winner, loser, command.identifier, command.request_id, command.at, True
                )
            )
    return state, outputs
