"""The identity graph protocol (ARCHITECTURE.md §4) as pure state transitions.

`handle_identifier` runs on the partition that owns an identifier key, `handle_profile` on the
partition that owns a profile id. Each takes the current state (None if the key is new) and one
command, and returns the new state and the outputs: commands for other keys, and emissions.
Handlers are deterministic and idempotent: delivering a command twice changes nothing more.

Every handler has one shape, `(rules, state, command) -> (state, outputs)`, and is found in a
table by the command's type (`_IDENTIFIER_HANDLERS`, `_PRIVACY_HANDLERS`, `_GRAPH_HANDLERS`).
The state's status decides before the table does: a suppressed identifier
(`privacy.at_suppressed`), an erased profile (`privacy.at_erased`) and a merged one
(`_forward`) answer every graph command in their own way. A handler owns the state it is given
and the list it returns; `handle_profile` concatenates the lists of a replay.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from typing import Any

from omnid.identity import evidence, history, operations, privacy, quarantine, refusals
from omnid.identity.commands import (
    Absorb,
    Apply,
    Attach,
    Claim,
    Found,
    GraphProfileCommand,
    IdentityChangeEmission,
    IdentityCommand,
    MergeByHand,
    MergeDeclined,
    MergeOffer,
    MergeRequest,
    MoveOwner,
    OfferRedirected,
    Output,
    ProfileCommand,
    ProfileSnapshot,
    ProfileTombstone,
    QuarantineBlock,
    QuarantineRelease,
    Relabel,
    Release,
    Relink,
    Resolve,
    Sighting,
    Split,
    SplitOff,
    Unban,
    Unlink,
    touch,
)
from omnid.identity.model import Identifier
from omnid.identity.refusals import Refusal, RefusalKind
from omnid.identity.rendering import ChangeKind
from omnid.identity.requests import (
    EraseMerged,
    Forget,
    ProfileRequest,
    SubjectRequest,
    Suppress,
    Unsuppress,
)
from omnid.identity.rules import IdentityRules
from omnid.identity.state import (
    TURNED_AWAY_WINDOW,
    IdentifierState,
    IdentifierStatus,
    LinkRule,
    ProfileState,
    ProfileStatus,
    remember,
)
from omnid.identity.survivorship import absorb, apply_event
from omnid.identity.ulid import profile_id_for

IdentifierStep = tuple[IdentifierState | None, list[Output]]
ProfileStep = tuple[ProfileState, list[Output]]


# --- identity stage ----------------------------------------------------------------------------


def handle_identifier(
    rules: IdentityRules, state: IdentifierState | None, command: IdentityCommand
) -> IdentifierStep:
    if (
        state is not None
        and state.status is IdentifierStatus.SUPPRESSED
        and not isinstance(command, _ANSWERED_WHEN_SUPPRESSED)
    ):
        return privacy.at_suppressed(rules, state, command)
    return _IDENTIFIER_HANDLERS[type(command)](rules, state, command)


def _on_resolve(
    rules: IdentityRules, state: IdentifierState | None, command: Resolve
) -> IdentifierStep:
    event = command.event
    identifier = event.identifiers[command.probe]
    at = event.event_time
    if not command.create:
        # Every delivery of an event starts at probe 0; the first one's resolution is the only
        # one, so a duplicate cannot count the event in a second, never-merged profile. A probe
        # further on is remembered too: a second delivery of that Resolve (at-least-once) could
        # otherwise find an owner the first did not, and count the event there as well. An
        # event resolved again without a quarantined identifier is a resolution of its own.
        digest = quarantine.resolution_digest(event, command.passed)
        if state is None:
            state = IdentifierState(identifier, first_seen=at, last_seen=at)
        elif digest in state.recent_events:
            return state, []
        remember(state.recent_events, digest, rules.recent_event_window)
    if state is not None and state.status is IdentifierStatus.QUARANTINED:
        past = quarantine.resolve_past(state, command)
        if past is not None:
            return state, past
    passed = command.passed
    if state is not None and state.owner is not None:
        _seen(state, at)
        return state, [Apply(state.owner, event, command.probe, passed)]
    last = command.probe == len(event.identifiers) - 1
    if not (command.create or last):
        return state, [Resolve(event, command.probe + 1, passed=passed)]
    if state is None:
        state = IdentifierState(identifier, first_seen=at, last_seen=at)
    _seen(state, at)
    profile_id = profile_id_for(at, identifier, f"{state.epoch}")
    state.owner = profile_id
    quarantine.founded(rules, state, event)
    return state, [Found(profile_id, event, command.probe, state.epoch, passed)]


def _seen(state: IdentifierState, at: int) -> None:
    if state.first_seen is None or at < state.first_seen:
        state.first_seen = at
    if state.last_seen is None or at > state.last_seen:
        state.last_seen = at


def _on_claim(
    rules: IdentityRules, state: IdentifierState | None, command: Claim
) -> IdentifierStep:
    if state is None:
        state = IdentifierState(command.identifier, first_seen=command.at, last_seen=command.at)
    _seen(state, command.at)
    answered = quarantine.on_claim(rules, state, command)
    if answered is not None:
        return state, answered
    owner = state.owner
    if owner is None:
        state.owner = command.profile_id
        attach = Attach(
            command.profile_id,
            command.identifier,
            state.epoch,
            command.event_id,
            command.at,
            LinkRule.SAME_EVENT,
        )
        return state, [attach]
    if command.again:
        state.refused_by.discard(command.profile_id)
    if owner == command.profile_id or command.profile_id in state.refused_by:
        return state, []
    # Asked again is newest again: the window forgets the claimants that stopped asking.
    state.turned_away.pop(command.profile_id, None)
    remember(state.turned_away, command.profile_id, TURNED_AWAY_WINDOW)
    winner, loser = sorted((owner, command.profile_id))
    released = state.released_by is not None
    return state, [
        MergeRequest(winner, loser, command.identifier, command.event_id, command.at, released)
    ]


def _on_relabel(
    rules: IdentityRules, state: IdentifierState | None, command: Relabel
) -> IdentifierStep:
    # Only ever towards an older profile, and only within the current ownership epoch, so
    # relabels arriving late or out of order cannot move the identifier backwards.
    if (
        state is not None
        and state.epoch == command.epoch
        and state.owner is not None
        and command.profile_id < state.owner
    ):
        state.owner = command.profile_id
    return state, []


def _on_release(
    rules: IdentityRules, state: IdentifierState | None, command: Release
) -> IdentifierStep:
    if state is None or state.epoch != command.epoch or state.owner is None:
        return state, []
    # The identifier gets a profile of its own rather than no owner: every identifier that is
    # not blocked belongs to exactly one profile (invariant 2).
    state.refused_by.add(command.profile_id)
    state.epoch += 1
    profile_id = profile_id_for(command.at, command.identifier, f"{state.epoch}")
    state.owner = profile_id
    attach = Attach(
        profile_id, command.identifier, state.epoch, command.event_id, command.at, LinkRule.RELEASED
    )
    outputs: list[Output] = [attach]
    if state.status is IdentifierStatus.QUARANTINED:
        return state, outputs  # it links nothing: its claimants are asked again on a release
    # Claimants turned away by earlier owners may fit with the identifier's new profile.
    released = state.released_by is not None
    for claimant in state.turned_away:
        if claimant != profile_id and claimant not in state.refused_by:
            winner, loser = sorted((profile_id, claimant))
            outputs.append(
                MergeRequest(
                    winner, loser, command.identifier, command.event_id, command.at, released
                )
            )
    return state, outputs


# Declines that record nothing for the pair: the link identifier is suppressed or links nothing.
_UNLINKING_DECLINES = (RefusalKind.ERASED, RefusalKind.QUARANTINED, RefusalKind.QUARANTINED_LINK)

# Commands a suppressed identifier answers itself: privacy requests, and quarantine reviews (a
# blocked value is a suppression marker: a second block is a redelivery, a release is refused).
_ANSWERED_WHEN_SUPPRESSED = (*privacy.IDENTIFIER_COMMANDS, QuarantineRelease, QuarantineBlock)

_IDENTIFIER_HANDLERS: dict[
    type, Callable[[IdentityRules, IdentifierState | None, Any], IdentifierStep]
] = {
    Resolve: _on_resolve,
    Claim: _on_claim,
    Relabel: _on_relabel,
    Release: _on_release,
    MoveOwner: operations.on_move_owner,
    Sighting: quarantine.on_sighting,
    QuarantineRelease: quarantine.on_release,
    QuarantineBlock: quarantine.on_block,
    SubjectRequest: privacy.on_subject_request,
    Suppress: privacy.on_suppress,
    Unsuppress: privacy.on_unsuppress,
}


# --- profile stage -----------------------------------------------------------------------------


def handle_profile(
    rules: IdentityRules, state: ProfileState | None, command: ProfileCommand
) -> tuple[ProfileState | None, list[Output]]:
    if isinstance(command, Found):
        return _found(rules, state, command)
    if isinstance(command, privacy.PROFILE_COMMANDS):  # whatever the profile's status, or none
        return _PRIVACY_HANDLERS[type(command)](rules, state, command)
    if state is not None and state.status is ProfileStatus.ERASED:
        return privacy.at_erased(rules, state, command)
    if state is None:
        # Operations name profiles: one nobody holds is answered, never created.
        if isinstance(command, Split | Unban | MergeByHand):
            return None, operations.unknown_profile(command)
        if isinstance(command, Unlink | Relink):
            return None, []
        if isinstance(command, MergeOffer) and operations.is_manual(command.via):
            return None, operations.unknown_loser(command)
        if isinstance(command, SplitOff):
            return operations.on_split_off(rules, None, command)
        state = ProfileState(command.key, created_at=_time_of(command), updated_at=0)
        if isinstance(command, MergeRequest | MergeOffer):
            # Nobody founded this profile yet, yet a merge names it: a split's new side whose
            # SplitOff is still in its topic (the runtime's batch-local hand-over let a command
            # of a third profile overtake it). Judged once the profile exists, on what it holds.
            operations.await_founding(state, command)
            return state, []
    state, outputs = _step(rules, state, command)
    if state.status is ProfileStatus.ACTIVE and state.awaiting is None and state.deferred:
        # A merge that finished frees the profile to replay what it deferred while waiting.
        while state.status is ProfileStatus.ACTIVE and state.awaiting is None and state.deferred:
            waiting = state.deferred.pop(0)
            state, more = _step(rules, state, waiting)
            outputs.extend(more)
        outputs = _last_snapshot_only(outputs)  # it says all the replay changed
    return state, outputs


def _found(
    rules: IdentityRules, state: ProfileState | None, command: Found
) -> tuple[ProfileState | None, list[Output]]:
    """The anchor's Attach, then the event's Apply, each handled as if it came alone (so every
    status and every waiting merge meets them as it met the two commands that Resolve sent
    before `Found`, which a worker may still find in its topic)."""
    attach, apply = command.parts()
    state, outputs = handle_profile(rules, state, attach)
    state, more = handle_profile(rules, state, apply)
    return state, _last_snapshot_only([*outputs, *more])


def _last_snapshot_only(outputs: list[Output]) -> list[Output]:
    """Snapshots render the live profile: of several of one command's, the last says all."""
    last = max((i for i, o in enumerate(outputs) if isinstance(o, ProfileSnapshot)), default=0)
    return [o for i, o in enumerate(outputs) if i >= last or not isinstance(o, ProfileSnapshot)]


def _time_of(command: GraphProfileCommand) -> int:
    if isinstance(command, Apply):
        return command.event.event_time
    return command.at


def _step(rules: IdentityRules, state: ProfileState, command: ProfileCommand) -> ProfileStep:
    if state.status is not ProfileStatus.ACTIVE:
        return _forward(rules, state, command)
    return _GRAPH_HANDLERS[type(command)](rules, state, command)


def _forward(rules: IdentityRules, state: ProfileState, command: ProfileCommand) -> ProfileStep:
    """Commands reaching a merged profile go to its successor; identifiers they name are
    relabelled to it on the way (path compression)."""
    successor = state.merged_into
    if successor is None:  # erased profiles keep nothing and link nothing
        return state, []
    if isinstance(command, Attach):
        return state, [
            _readdress(command, successor),
            Relabel(command.identifier, successor, command.epoch),
        ]
    if isinstance(command, Apply | Split | Unban | MergeByHand | Unlink | Relink):
        # An operator who named a profile that has merged since: the survivor holds what it held.
        return state, [_readdress(command, successor)]
    if isinstance(command, Absorb):
        return state, [dataclasses.replace(command, winner=successor)]
    if isinstance(command, MergeRequest):
        return state, [*_merge_request(successor, command.loser, command)]
    if isinstance(command, MergeOffer) and successor != command.winner:
        redirected = OfferRedirected(
            command.winner,
            command.loser,
            successor,
            command.via,
            command.event_id,
            command.at,
            command.offer,
            command.released,
        )
        return state, [redirected]
    # MergeDeclined / OfferRedirected to a merged profile are late duplicates: the profile was
    # not waiting (a waiting profile defers offers, so it cannot have been merged).
    return state, []


def _readdress(
    command: Apply | Attach | Split | Unban | MergeByHand | Unlink | Relink, profile_id: str
) -> Apply | Attach | Split | Unban | MergeByHand | Unlink | Relink:
    return dataclasses.replace(command, profile_id=profile_id)


def _merge_request(a: str, b: str, cause: MergeRequest | OfferRedirected) -> list[MergeRequest]:
    if a == b:
        return []
    winner, loser = sorted((a, b))
    return [MergeRequest(winner, loser, cause.via, cause.event_id, cause.at, cause.released)]


def _types_over(rules: IdentityRules, counts: dict[str, int]) -> list[str]:
    """The identifier types of which `counts` holds more than the rules' limit, in name order."""
    over = []
    for identifier_type, count in sorted(counts.items()):
        limit = rules.limit(identifier_type)
        if limit is not None and count > limit:
            over.append(identifier_type)
    return over


def _over_limit(rules: IdentityRules, counts: dict[str, int]) -> Refusal | None:
    """The refusal when `counts` exceed a limit (the first type over it), else None."""
    over = _types_over(rules, counts)
    return refusals.limit(over[0]) if over else None


def _refuse_link(state: ProfileState, via: Identifier, reason: Refusal) -> None:
    """A declined pair's link identifier: refused here (the first reason stays), no longer
    claimed. The callers that must not refuse what the profile holds check that first."""
    state.refused.setdefault(via.key, reason)
    state.claimed.pop(via.key, None)


def _release_surplus(
    rules: IdentityRules,
    state: ProfileState,
    over: list[str],
    winner_linked: dict[str, str],
    command: MergeOffer,
) -> list[Output]:
    """Before merging, the loser lets go of identifiers the winner has no room for (oldest kept).
    Room counts what the winner holds or has claimed, so it never overestimates."""
    outputs: list[Output] = []
    for identifier_type in over:
        limit = rules.limit(identifier_type) or 0
        room = limit - sum(1 for t in winner_linked.values() if t == identifier_type)
        mine = sorted(
            (held.added_at, key)
            for key, held in state.identifiers.items()
            if held.type == identifier_type
        )
        reason = refusals.limit(identifier_type)
        for _, key in mine[max(room, 0) :]:
            held = state.identifiers.pop(key)
            identifier = Identifier(held.type, held.value)
            state.refused[key] = reason
            outputs.append(
                Release(
                    identifier, state.profile_id, held.epoch, command.event_id, command.at, reason
                )
            )
            outputs.append(_released_change(state, identifier, command, reason))
    return outputs


def _declined_for(rules: IdentityRules, reason: Refusal | None, via: Identifier) -> Refusal | None:
    """The decline recorded for a pair, if it still holds for a link through `via`: one for a
    weak link (a shared tablet between two known profiles) holds for weak links only, so a
    strong identifier shared later still merges the pair."""
    if reason is not None and reason.kind is RefusalKind.WEAK_LINK and not rules.is_weak(via.type):
        return None
    return reason


def _is_known(rules: IdentityRules, types: Iterable[str]) -> bool:
    """Holds (or has claimed) a strong identifier: the profile stands for a known person."""
    weak = rules.weak_types
    return any(identifier_type not in weak for identifier_type in types)


def _weakly_tied(
    rules: IdentityRules, state: ProfileState, via: Identifier, released: bool
) -> Refusal | None:
    """A known profile asked again to merge through a strong identifier it refused for a limit
    (a release of it asks its turned-away claimants) or that was quarantined (`released`: its
    release asks every claimant), which its events carry with weak identifiers only: it took
    them while anonymous, and became known since through a weak link (a cookie joined it to a
    customer). Merging would join two people by the device alone, so it is declined as the
    weak link it is (`weak_link:<that type>`); None otherwise."""
    if rules.is_weak(via.type):
        return None
    refused = state.refused.get(via.key)
    if not released and (refused is None or refused.kind is not RefusalKind.LIMIT):
        return None
    linked = state.linked()
    if not _is_known(rules, linked.values()):
        return None
    weak_type = None
    for event in state.history.events.values():
        if all(i.key != via.key for i in event.identifiers):
            continue
        keys = [i.key for i in event.identifiers if i.key in linked and i.key != via.key]
        if any(not rules.is_weak(linked[k]) for k in keys):
            return None  # a strong identifier here joins it
        weak_type = weak_type or next((linked[k] for k in keys), None)
    return refusals.weak_link(weak_type) if weak_type is not None else None


def _on_apply(rules: IdentityRules, state: ProfileState, command: Apply) -> ProfileStep:
    event = command.event
    digest = event.digest
    if digest in state.applied:
        return state, []
    if operations.unfounded(state):
        state.deferred.append(command)
        return state, []
    passed = quarantine.apply_past(rules, state, command)
    if passed is not None:
        return state, passed
    found_by = event.identifiers[command.probe].key
    refused_by = state.refused.get(found_by)
    if found_by not in state.identifiers and (
        found_by in state.moved_out
        or (refused_by is not None and refused_by.kind is RefusalKind.BAN)
    ):
        # Found through an identifier a split (or an undone quarantine glue) just moved away
        # (the event was in flight): it belongs to that identifier's new side. Sent there
        # directly, after the SplitOff this profile sent it: the identifier may still point
        # here, as the new side moves it only once it exists (resolving again could then go
        # round between the two, in one worker's batch, for ever). Not recorded as passed on:
        # a copy of this Apply comes this way again, and the event may come back through an
        # identifier this profile holds (resolved again where it went), to be counted here.
        moved_to = operations.moved_to(
            rules.recognition_key, state, event.identifiers[command.probe]
        )
        if moved_to is not None and (refused_by is None or refused_by.kind is RefusalKind.BAN):
            return state, [dataclasses.replace(command, profile_id=moved_to)]
        # Refused here for a reason of its own: its owner is elsewhere already.
        return state, [Resolve(event, command.probe, create=True, passed=command.passed)]
    let_go = refused_by is not None and refused_by.kind is RefusalKind.LIMIT
    if command.probe == 0 and let_go and found_by not in state.identifiers:
        # Found through the very identifier this profile let go for a limit: the Release it
        # sent before this on the same partition gives the identifier a profile of its own,
        # where the event goes (taken here, it would join what it carries to this profile
        # through an identifier the profile does not hold).
        remember(state.passed_on, digest, rules.applied_event_window)
        return state, [Resolve(event, 0, create=True, passed=command.passed)]
    if command.probe > 0:
        if digest in state.passed_on:
            return state, []
        via_weak = rules.is_weak(event.identifiers[command.probe].type)
        if via_weak and state.awaiting is not None:
            # Whether this profile is known may change with the merge it awaits, and the
            # newer profile is deciding on the identifiers offered: decide after the answer.
            state.deferred.append(command)
            return state, []
        stronger = event.identifiers[: command.probe]
        if (
            let_go
            or _conflicts(rules, state, stronger)
            or (via_weak and _weakly_linked(rules, state, stronger))
        ):
            # Found through a lower-priority identifier (a shared device, say) but the event's
            # stronger identifiers do not fit here, or through one this profile let go for a
            # limit (its Release on the way: the identifier still points here), which would
            # join them through an identifier it does not hold: the anchor founds or finds its
            # own profile.
            remember(state.passed_on, digest, rules.applied_event_window)
            return state, [Resolve(event, 0, create=True, passed=command.passed)]
    outputs: list[Output] = quarantine.sightings(rules, state, event, command.probe)
    # The event as it came in: the quarantined identifiers it passed are claimed too.
    event = quarantine.whole(rules, event, command.passed)
    apply_event(state, event, rules.source_priority(event.channel), rules.applied_event_window)
    history.record_event(rules, state, event)
    evidence.applied(state, event)
    outputs.insert(0, touch(state, "event", event.event_id, event.event_time))
    at = event.event_time
    strong: set[str] | None = None
    again = quarantine.joined_directly(state, event)
    for identifier in event.identifiers:
        key = identifier.key
        if key not in state.identifiers and key not in state.refused:
            state.claimed[key] = identifier.type
            claim = Claim(identifier, state.profile_id, event.event_id, at, again=key in again)
            if rules.quarantine(identifier.type) is not None:
                if strong is None:
                    strong = quarantine.strong_keys(rules, state, event)
                if len(strong) > 1 or (strong and key not in strong):
                    # A known person's claim: it counts towards the identifier's quarantine.
                    claim = Claim(
                        identifier,
                        state.profile_id,
                        event.event_id,
                        at,
                        True,
                        event.channel,
                        event.source,
                        claim.again,
                    )
            outputs.append(claim)
    return state, outputs


def _conflicts(rules: IdentityRules, state: ProfileState, stronger: tuple[Identifier, ...]) -> bool:
    new: dict[str, int] = {}
    for identifier in stronger:
        if identifier.key not in state.identifiers and identifier.key not in state.claimed:
            new[identifier.type] = new.get(identifier.type, 0) + 1
    if not new:
        return False
    linked = state.linked_counts()
    counts = {t: linked.get(t, 0) + n for t, n in new.items()}
    return bool(_types_over(rules, counts))


def _weakly_linked(
    rules: IdentityRules, state: ProfileState, stronger: tuple[Identifier, ...]
) -> bool:
    """The event would bring a strong identifier new to a known profile through a weak one."""
    weak = rules.weak_types
    linked = state.linked()
    new_strong = any(i.type not in weak and i.key not in linked for i in stronger)
    return new_strong and _is_known(rules, linked.values())


def _on_attach(rules: IdentityRules, state: ProfileState, command: Attach) -> ProfileStep:
    if command.rule is not LinkRule.SAME_EVENT:  # an anchor, or a released identifier's own
        operations.founded(state)
    if state.awaiting is not None:
        state.deferred.append(command)
        return state, []
    identifier = command.identifier
    key = identifier.key
    if key in state.identifiers:
        return state, []
    moved = quarantine.moved_attach(state, command)
    if moved is not None:
        return state, moved
    outputs: list[Output] = []
    if command.move:
        # Still its old owner's: moved here, in a new epoch, ahead of a release of it.
        outputs.append(MoveOwner(identifier, state.profile_id, command.epoch))
        command = dataclasses.replace(command, epoch=command.epoch + 1, move=False)
    state.claimed.pop(key, None)
    reason = state.refused.get(key)
    if reason is None:
        reason = _over_limit(rules, {identifier.type: state.count_of(identifier.type) + 1})
    if reason is not None:
        first_refusal = key not in state.refused
        state.refused[key] = reason
        # Released again every time: a new ownership epoch may point here through a merge.
        outputs.append(
            Release(
                identifier, state.profile_id, command.epoch, command.event_id, command.at, reason
            )
        )
        if first_refusal:
            outputs.append(_released_change(state, identifier, command, reason))
        return state, outputs
    state.identifiers[key] = evidence.attached(
        state, identifier, command.at, command.event_id, command.rule, command.epoch
    )
    outputs.append(touch(state, "identifier_added", command.event_id, command.at))
    outputs.append(
        _change(ChangeKind.IDENTIFIER_ADDED, state.profile_id, None, [identifier], command, None)
    )
    return state, outputs


def _released_change(
    state: ProfileState,
    identifier: Identifier,
    command: Apply | Attach | MergeRequest | MergeOffer | Absorb,
    reason: Refusal,
) -> IdentityChangeEmission:
    """The `identifier_released` change of a holder that let `identifier` go for `reason`."""
    return _change(
        ChangeKind.IDENTIFIER_RELEASED, state.profile_id, None, [identifier], command, reason
    )


def _change(
    kind: ChangeKind,
    profile_id: str,
    other: str | None,
    identifiers: list[Identifier],
    cause: Apply | Attach | MergeRequest | MergeOffer | Absorb,
    reason: Refusal | None,
) -> IdentityChangeEmission:
    event_id = cause.event.event_id if isinstance(cause, Apply) else cause.event_id
    at = cause.event.event_time if isinstance(cause, Apply) else cause.at
    # A merge by hand is linked by its operator, not by an identifier: name who asked.
    manual = [i.value for i in identifiers if operations.is_manual(i)]
    identifiers = [i for i in identifiers if not operations.is_manual(i)]
    return IdentityChangeEmission.of(
        kind,
        profile_id,
        other,
        identifiers,
        event_id,
        reason,
        at,
        operator=manual[0] if manual else None,
    )


def _on_merge_request(
    rules: IdentityRules, state: ProfileState, command: MergeRequest
) -> ProfileStep:
    # Through a released identifier: it links here again (the claims it kept out made again).
    reclaims = quarantine.note_release(rules, state, command)
    state, outputs = _judge_request(rules, state, command)
    return state, [*reclaims, *outputs]


def _judge_request(rules: IdentityRules, state: ProfileState, command: MergeRequest) -> ProfileStep:
    loser = command.loser
    # Moved on first: a refusal here (a later undo's) is about this profile's own claim, while
    # the request may be another claimant's, that found the identifier still pointing here.
    moved_to = operations.moved_to(rules.recognition_key, state, command.via)
    if moved_to is None and quarantine.links_nothing(state, command.via):
        return state, quarantine.stop_request(state, command)
    if moved_to is not None and command.via.key not in state.claimed:
        # (Claimed here again since, by an event of this profile's own: its own link, judged as
        # any; the side it moved to claims it itself, in its SplitOff.)
        return state, [*_merge_request(moved_to, loser, command)]
    if (
        moved_to is not None
        and (loser == state.profile_id or loser in state.absorbed)
        and moved_to not in state.absorbed
    ):
        # This profile's own claim, answered by the profile that held the identifier, which
        # has merged in here since the identifier left it (with an undo's new profile, or a
        # split's other side): the claim meets the identifier where it went.
        return state, [*_merge_request(state.profile_id, moved_to, command)]
    declined = _declined_for(rules, state.declined.get(loser), command.via)
    if declined is not None and command.via.key not in state.identifiers:
        _refuse_link(state, command.via, declined)
    if operations.is_manual(command.via) and (loser in state.absorbed or declined is not None):
        return state, operations.manual_answer(state, command, declined or refusals.ALREADY_MERGED)
    if loser == state.profile_id or loser in state.absorbed or declined is not None:
        return state, []
    if state.awaiting is not None:
        # Even a request for the pair being offered waits: if that offer is redirected or
        # declined, this request's link identifier must still be settled (or marked refused).
        state.deferred.append(command)
        return state, []
    if loser < state.profile_id:  # forwarded here from a younger profile: roles swap
        swapped = dataclasses.replace(command, winner=loser, loser=state.profile_id)
        return state, [swapped]
    weakly = _weakly_tied(rules, state, command.via, command.released)
    if weakly is not None:
        state.declined[loser] = weakly
        return state, []
    state.awaiting = loser
    state.offers += 1
    linked = tuple(sorted(state.linked().items()))
    offer = MergeOffer(
        state.profile_id,
        loser,
        linked,
        command.via,
        command.event_id,
        command.at,
        tuple(state.bans.values()),
        offer=state.offers,
        released=command.released,
    )
    return state, [offer]


def _on_merge_offer(rules: IdentityRules, state: ProfileState, command: MergeOffer) -> ProfileStep:
    if command.winner in state.absorbed:  # cannot happen while ids only merge downwards
        return state, []
    reclaims = quarantine.note_release(rules, state, command)
    state, outputs = _answer_offer(rules, state, command)
    return state, [*reclaims, *outputs]


def _answer_offer(rules: IdentityRules, state: ProfileState, command: MergeOffer) -> ProfileStep:
    winner = command.winner
    moved_to = operations.moved_to(rules.recognition_key, state, command.via)
    if moved_to is None and quarantine.links_nothing(state, command.via):
        return state, quarantine.stop_offer(state, command)
    if state.awaiting is not None:
        # Busy absorbing a newer profile: answer once that is done, with the final counts.
        state.deferred.append(command)
        return state, []
    if moved_to is not None and command.via.key not in state.claimed:
        redirected = OfferRedirected(
            winner,
            state.profile_id,
            moved_to,
            command.via,
            command.event_id,
            command.at,
            command.offer,
            command.released,
        )
        return state, [redirected]
    outputs: list[Output] = []
    reason = _declined_for(rules, state.declined.get(winner), command.via)
    if reason is None:
        reason, outputs = _judge_offer(rules, state, command)
        if reason is not None:
            state.declined[winner] = reason
            if not command.winner_erased:
                # The loser refuses the link even when it holds it: it keeps what it holds.
                _refuse_link(state, command.via, reason)
                outputs.append(
                    _change(
                        ChangeKind.MERGE_REFUSED,
                        winner,
                        state.profile_id,
                        [command.via],
                        command,
                        reason,
                    )
                )
    if reason is not None:
        if command.winner_erased:
            # An erased person this profile would not have joined: nothing of theirs is kept,
            # not even the link identifier as refused (it is suppressed).
            privacy.forget(state, command.via)
        outputs.append(
            MergeDeclined(
                winner,
                state.profile_id,
                reason,
                command.via,
                command.event_id,
                command.at,
                command.offer,
            )
        )
        return state, outputs
    # Accept: the whole state travels to the winner; this id keeps only the forwarding pointer.
    merged = ProfileState(
        state.profile_id,
        created_at=state.created_at,
        status=ProfileStatus.MERGED,
        merged_into=winner,
        version=state.version,
        absorbed=set(state.absorbed),
        cause_kind="merged",
        cause_event_id=command.event_id,
        updated_at=max(state.updated_at, command.at),
    )
    outputs.append(Absorb(winner, state, command.via, command.event_id, command.at))
    for held in state.identifiers.values():
        outputs.append(Relabel(Identifier(held.type, held.value), winner, held.epoch))
    outputs.append(ProfileTombstone(state.profile_id))
    return merged, outputs


def _judge_offer(
    rules: IdentityRules, state: ProfileState, command: MergeOffer
) -> tuple[Refusal | None, list[Output]]:
    """The loser's answer to an offer no earlier decline settles: the reason to decline it, or
    None to accept, with the identifiers released to make room (none when declined)."""
    mine = privacy.linked_for_offer(rules, state, command)
    together = dict(command.winner_linked)
    together.update(mine)
    combined: dict[str, int] = {}
    for identifier_type in together.values():
        combined[identifier_type] = combined.get(identifier_type, 0) + 1
    over = _types_over(rules, combined)
    # Too many of a type at least as strong as the link (two user ids joined by a shared
    # tablet) means two people: decline. Too many of weaker types (an eleventh device
    # joined by a user id) means one person: merge and let the surplus go.
    # A merge by hand releases nothing to fit: any type over its limit blocks it.
    via_priority = (
        min(rules.priority(t) for t in rules.identifier_types)
        if operations.is_manual(command.via)
        else rules.priority(command.via.type)
    )
    blocking = [t for t in over if rules.priority(t) >= via_priority]
    if blocking:
        return refusals.limit(blocking[0]), []
    # A re-link ban of either side keeps the two apart.
    reason = operations.ban_between(rules.recognition_key, command, state)
    if reason is not None:
        return reason, []
    if (
        rules.is_weak(command.via.type)
        and _is_known(rules, (t for _, t in command.winner_linked))
        and _is_known(rules, mine.values())
    ):
        return refusals.weak_link(command.via.type), []
    weakly = _weakly_tied(rules, state, command.via, command.released)
    if weakly is not None:
        return weakly, []
    if not over:
        return None, []
    return None, _release_surplus(rules, state, over, dict(command.winner_linked), command)


def _on_merge_declined(
    rules: IdentityRules, state: ProfileState, command: MergeDeclined
) -> ProfileStep:
    if command.reason.kind in _UNLINKING_DECLINES:
        # The other profile was erased, or the link identifier is quarantined: it is
        # suppressed or links nothing, and is not refused here. Claimed there only through a
        # quarantined identifier: the claim here is still this profile's own (dropping it
        # would make a known profile look anonymous to a weak link), to be answered when the
        # identifier gets a profile of its own.
        if command.reason.kind is not RefusalKind.QUARANTINED_LINK:
            state.claimed.pop(command.via.key, None)
        if _answers(state, command):
            state.awaiting = None
        return state, []
    recorded = state.declined.get(command.loser)
    if recorded is None or recorded.kind is RefusalKind.WEAK_LINK:
        state.declined[command.loser] = command.reason
    if command.via.key not in state.identifiers:
        _refuse_link(state, command.via, command.reason)
    if _answers(state, command):
        state.awaiting = None
    return state, []


def _answers(state: ProfileState, command: MergeDeclined | OfferRedirected) -> bool:
    """Whether `command` answers the offer this profile awaits: a late duplicate of the answer
    to an earlier offer to the same profile (made since through another identifier) does not,
    and must not free it while the newer offer is still open."""
    return state.awaiting == command.loser and command.offer == state.offers


def _on_offer_redirected(
    rules: IdentityRules, state: ProfileState, command: OfferRedirected
) -> ProfileStep:
    if not _answers(state, command):
        return state, []
    state.awaiting = None
    successor = command.successor
    declined = _declined_for(rules, state.declined.get(successor), command.via)
    if declined is not None and command.via.key not in state.identifiers:
        _refuse_link(state, command.via, declined)
    if successor in state.absorbed or declined is not None:
        return state, []
    outputs: list[Output] = []
    for request in _merge_request(state.profile_id, successor, command):
        if request.winner == state.profile_id:
            state.deferred.insert(0, request)
        else:
            outputs.append(request)
    return state, outputs


def _on_absorb(rules: IdentityRules, state: ProfileState, command: Absorb) -> ProfileStep:
    loser = command.loser
    if loser.profile_id in state.absorbed:
        return state, []
    winner_keys = list(state.identifiers)
    absorb(state, loser, rules.applied_event_window)
    history.join_history(rules, state, loser)
    evidence.merged(state, loser, winner_keys, command.via, command.event_id, command.at)
    operations.join_operations(state, loser)
    if state.awaiting == loser.profile_id:
        state.awaiting = None
    outputs: list[Output] = []
    # Merge requests the loser was coordinating become the survivor's.
    for waiting in loser.deferred:
        if isinstance(waiting, MergeRequest):
            outputs.extend(_merge_request(state.profile_id, waiting.loser, waiting))
        elif isinstance(waiting, Attach):
            outputs.append(_readdress(waiting, state.profile_id))
        else:
            outputs.append(waiting)
    outputs.append(touch(state, "merged", command.event_id, command.at))
    outputs.append(
        _change(ChangeKind.MERGED, state.profile_id, loser.profile_id, [command.via], command, None)
    )
    return state, outputs


_PRIVACY_HANDLERS: dict[
    type,
    Callable[[IdentityRules, ProfileState | None, Any], tuple[ProfileState | None, list[Output]]],
] = {
    ProfileRequest: privacy.on_profile_request,
    EraseMerged: privacy.on_erase_merged,
    Forget: privacy.on_forget,
}

_GRAPH_HANDLERS: dict[type, Callable[[IdentityRules, ProfileState, Any], ProfileStep]] = {
    Apply: _on_apply,
    Attach: _on_attach,
    MergeRequest: _on_merge_request,
    MergeOffer: _on_merge_offer,
    MergeDeclined: _on_merge_declined,
    OfferRedirected: _on_offer_redirected,
    Absorb: _on_absorb,
    Split: operations.on_split,
    Unban: operations.on_unban,
    MergeByHand: operations.on_merge_by_hand,
    # A SplitOff for a profile that exists is a redelivery: nothing to do.
    SplitOff: operations.on_split_off,
    Unlink: quarantine.on_unlink,
    Relink: quarantine.on_relink,
}
