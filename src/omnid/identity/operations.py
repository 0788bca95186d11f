"""Identity operations asked for by an operator: split with a re-link ban, unban, merge by hand.

They are commands like any other (keyed by profile id, idempotent through `request_id`), so
they run through the same partitions, batches and transactions as the events. The protocol
(`protocol.py`) dispatches to the handlers here and enforces bans in its merge handshake.
"""

from __future__ import annotations

import dataclasses

from omnid.identity import refusals
from omnid.identity.commands import (
    IdentityChangeEmission,
    MergeByHand,
    MergeDeclined,
    MergeOffer,
    MergeRequest,
    MoveOwner,
    Output,
    ProfileCommand,
    Split,
    SplitOff,
    Unban,
    touch,
)
from omnid.identity.evidence import MANUAL_LINK
from omnid.identity.history import recompute
from omnid.identity.model import Identifier
from omnid.identity.refusals import Refusal, RefusalKind
from omnid.identity.rendering import ChangeKind
from omnid.identity.rules import IdentityRules
from omnid.identity.state import (
    Ban,
    IdentifierState,
    ProfileState,
    identifier_digest,
    remember,
    trim,
)
from omnid.identity.ulid import profile_id_for

# Operation request ids a profile remembers (a redelivered Split must not split again), and
# identifiers an undone quarantine glue moved out of it.
OPERATIONS_WINDOW = 256
MOVED_OUT_WINDOW = 256


def ban_id_for(left_profile: str, right_profile: str) -> str:
    """Names both sides, so `omnid unban BAN` knows where to send the unban."""
    return f"{left_profile}.{right_profile}"


def ban_sides(ban_id: str) -> tuple[str, str]:
    left, _, right = ban_id.partition(".")
    if not left or not right:
        raise ValueError(f"{ban_id!r} is not a ban id (PROFILE.PROFILE)")
    return left, right


def split_profile_id(command: Split, anchor: Identifier) -> str:
    return profile_id_for(command.at, anchor, f"split:{command.profile_id}:{command.request_id}")


def _remember(state: ProfileState, request_id: str) -> None:
    remember(state.operations, request_id, OPERATIONS_WINDOW)


def _identifier(key: str) -> Identifier:
    identifier_type, _, value = key.partition(":")
    return Identifier(identifier_type, value)


def unknown_profile(command: Split | Unban | MergeByHand) -> list[Output]:
    """An operation addressed to a profile id nobody holds: answered, and no state is made."""
    return [
        IdentityChangeEmission.of(
            _refusal_kind(command),
            command.profile_id,
            None,
            [],
            command.request_id,
            refusals.UNKNOWN_PROFILE,
            command.at,
            command.operator,
        )
    ]


def _refusal_kind(command: Split | Unban | MergeByHand) -> ChangeKind:
    if isinstance(command, Split):
        return ChangeKind.SPLIT_REFUSED
    if isinstance(command, Unban):
        return ChangeKind.UNBAN_REFUSED
    return ChangeKind.MERGE_REFUSED


# --- split -------------------------------------------------------------------------------------


def on_split(
    rules: IdentityRules, state: ProfileState, command: Split
) -> tuple[ProfileState, list[Output]]:
    if command.request_id in state.operations:
        return state, []
    if state.awaiting is not None:
        # Mid-merge the profile's identifiers are about to change: split what it ends up with.
        state.deferred.append(command)
        return state, []
    named_set = set(command.identifiers)
    missing = sorted(named_set - set(state.identifiers))
    kept = sorted(k for k in state.identifiers if k not in named_set)
    refusal = None
    if missing:
        refusal = refusals.NOT_HELD
    elif not named_set:
        refusal = refusals.NAMES_NO_IDENTIFIER
    elif not kept:
        refusal = refusals.NAMES_EVERY_IDENTIFIER
    if refusal is not None:
        _remember(state, command.request_id)
        refused = IdentityChangeEmission.of(
            ChangeKind.SPLIT_REFUSED,
            state.profile_id,
            None,
            [_identifier(k) for k in missing],
            command.request_id,
            refusal,
            command.at,
            command.operator,
        )
        return state, [refused]
    named = sorted(named_set)
    # The side that stays also has the identifiers it claimed and has not heard back about.
    staying_keys = sorted(k for k in state.linked() if k not in named_set)
    new_id = split_profile_id(command, _identifier(named[0]))
    secret = rules.recognition_key
    ban = Ban(
        ban_id_for(state.profile_id, new_id),
        state.profile_id,
        new_id,
        command.at,
        command.operator,
        tuple(sorted(identifier_digest(secret, k) for k in staying_keys)),
        tuple(sorted(identifier_digest(secret, k) for k in named)),
    )
    reason = refusals.ban(ban.ban_id)
    new, moves = carve(
        rules, state, named, new_id, set(state.identifiers), command.request_id, command.at
    )
    # Each side refuses the other side's identifiers while the ban holds.
    for key in staying_keys:
        new.refused[key] = reason
    for key in named:
        state.refused[key] = reason
    new.bans[ban.ban_id] = ban
    state.bans[ban.ban_id] = ban
    outputs: list[Output] = [
        SplitOff(new, command.request_id, command.at, tuple(moves)),
        touch(state, "split", command.request_id, command.at),
        IdentityChangeEmission.of(
            ChangeKind.SPLIT,
            state.profile_id,
            new_id,
            [_identifier(k) for k in named],
            command.request_id,
            reason,
            command.at,
            command.operator,
        ),
    ]
    return state, outputs


def carve(
    rules: IdentityRules,
    state: ProfileState,
    named: list[str],
    new_id: str,
    anchors: set[str],
    request_id: str,
    at: int,
) -> tuple[ProfileState, list[MoveOwner]]:
    """The new profile `new_id` made of the `named` identifiers of `state` (held ones move with a
    MoveOwner, claimed ones as claims) and the events that came through them; both sides are
    recomputed from their events. An event goes with the named identifiers when its anchor
    here (its highest-priority identifier among `anchors`; event identifiers are in priority
    order) is named: weaker identifiers of such an event, a shared tablet say, came along and do
    not hold it back; an event anchored on a kept identifier stays. The caller sends the new
    profile (SplitOff, which carries the MoveOwners: the new profile sends them) and says why."""
    named_set = set(named)
    moving = {}
    staying = {}
    for event_id, event in state.history.events.items():
        anchor = next((i.key for i in event.identifiers if i.key in anchors), None)
        if anchor is not None and anchor in named_set:
            moving[event_id] = event
        else:
            staying[event_id] = event
    new = ProfileState(new_id, created_at=at)
    moves: list[MoveOwner] = []
    for key in named:
        held_identifier = state.identifiers.pop(key, None)
        if held_identifier is None:
            new.claimed[key] = state.claimed.pop(key)
            continue
        # The identifier enters a new ownership epoch at the new profile (see MoveOwner).
        new.identifiers[key] = dataclasses.replace(held_identifier, epoch=held_identifier.epoch + 1)
        moves.append(
            MoveOwner(
                Identifier(held_identifier.type, held_identifier.value),
                new_id,
                held_identifier.epoch,
            )
        )
    recompute(rules, new, moving.values())
    recompute(rules, state, staying.values())
    # Links the old profile declined or refused are not retried by the new one either. A
    # refusal because only a quarantined identifier joined a claim stays with the events that
    # made the claim: where they stay, the new profile has no claim to refuse, and the refusal
    # would drop a merge through the identifier that answers a claim it comes to take over.
    carried = {i.key for event in moving.values() for i in event.identifiers}
    new.declined = dict(state.declined)
    new.refused = {
        k: r
        for k, r in state.refused.items()
        if k not in named_set and (r.kind is not RefusalKind.QUARANTINED_LINK or k in carried)
    }
    new.bans = dict(state.bans)
    new.released = dict(state.released)
    _remember(state, request_id)
    _remember(new, request_id)
    new.cause_kind = "split"
    new.cause_event_id = request_id
    return new, moves


def await_founding(state: ProfileState, command: ProfileCommand) -> None:
    """`state` is a profile nobody has founded yet: it keeps `command` until its SplitOff (or
    its anchor's Attach) founds it. It awaits itself, which no merge ever does, so every
    command that waits for a merge waits for that too."""
    state.awaiting = state.profile_id
    state.deferred.append(command)


def unfounded(state: ProfileState) -> bool:
    return state.awaiting == state.profile_id


def founded(state: ProfileState) -> None:
    """The profile's anchor attaches: it exists now, and judges what waited for it."""
    if unfounded(state):
        state.awaiting = None


def on_split_off(
    rules: IdentityRules, state: ProfileState | None, command: SplitOff
) -> tuple[ProfileState, list[Output]]:
    """The new side starts with the state its split profile computed (once), and only then
    takes its identifiers and makes its claims; what reached it before (a merge, see
    `await_founding`) is judged then."""
    if state is not None and not unfounded(state):
        return state, []
    new = command.profile
    if state is not None:
        new.deferred = [*state.deferred, *new.deferred]
    return new, [touch(new, "split", command.request_id, command.at), *command.sends]


def on_move_owner(
    rules: IdentityRules, state: IdentifierState | None, command: MoveOwner
) -> tuple[IdentifierState | None, list[Output]]:
    # A move of a later epoch can come first: the move that began that epoch, sent to the
    # topic by the profile it left, may still be on its way while the new profile's own move,
    # handed on within its worker's batch, overtakes it. Only the profile that earlier move
    # made the owner sends a move of that epoch, so it stands for both (the earlier one is then
    # stale); dropped, it left the identifier with the profile in between for good.
    if state is None or command.epoch < state.epoch or state.owner is None:
        return state, []
    state.owner = command.profile_id
    state.epoch = command.epoch + 1
    return state, []


# --- unban -------------------------------------------------------------------------------------


def on_unban(
    rules: IdentityRules, state: ProfileState, command: Unban
) -> tuple[ProfileState, list[Output]]:
    ban = state.bans.pop(command.ban_id, None)
    if ban is None:
        if command.request_id in state.operations:  # answered once, like the unban itself
            return state, []
        _remember(state, command.request_id)
        refused = IdentityChangeEmission.of(
            ChangeKind.UNBAN_REFUSED,
            state.profile_id,
            None,
            [],
            command.request_id,
            refusals.NOT_BANNED,
            command.at,
            command.operator,
        )
        return state, [refused]
    reason = refusals.ban(command.ban_id)
    # What the ban refused may link again: the next shared event merges the two sides.
    state.refused = {k: r for k, r in state.refused.items() if r != reason}
    state.declined = {p: r for p, r in state.declined.items() if r != reason}
    other = ban.right_profile if ban.left_profile == state.profile_id else ban.left_profile
    unbanned = IdentityChangeEmission.of(
        ChangeKind.UNBANNED,
        state.profile_id,
        other,
        [],
        command.request_id,
        reason,
        command.at,
        command.operator,
    )
    return state, [unbanned]


# --- merge by hand -----------------------------------------------------------------------------


def on_merge_by_hand(
    rules: IdentityRules, state: ProfileState, command: MergeByHand
) -> tuple[ProfileState, list[Output]]:
    if command.other == state.profile_id:
        refused = IdentityChangeEmission.of(
            ChangeKind.MERGE_REFUSED,
            state.profile_id,
            command.other,
            [],
            command.request_id,
            refusals.SAME_PROFILE,
            command.at,
            command.operator,
        )
        return state, [refused]
    winner, loser = sorted((state.profile_id, command.other))
    via = Identifier(MANUAL_LINK, command.operator)
    return state, [MergeRequest(winner, loser, via, command.request_id, command.at)]


def is_manual(via: Identifier) -> bool:
    return via.type == MANUAL_LINK


def manual_answer(state: ProfileState, command: MergeRequest, reason: Refusal) -> list[Output]:
    """A merge by hand that the protocol would silently skip still gets an answer."""
    return [
        IdentityChangeEmission.of(
            ChangeKind.MERGE_REFUSED,
            state.profile_id,
            command.loser,
            [],
            command.event_id,
            reason,
            command.at,
            command.via.value,
        )
    ]


def unknown_loser(command: MergeOffer) -> list[Output]:
    """A merge by hand offered to a profile id nobody holds."""
    reason = refusals.UNKNOWN_PROFILE
    return [
        MergeDeclined(
            command.winner,
            command.loser,
            reason,
            command.via,
            command.event_id,
            command.at,
            command.offer,
        ),
        IdentityChangeEmission.of(
            ChangeKind.MERGE_REFUSED,
            command.winner,
            command.loser,
            [],
            command.event_id,
            reason,
            command.at,
            command.via.value,
        ),
    ]


# --- bans in the merge handshake ---------------------------------------------------------------


def ban_between(secret: bytes, offer: MergeOffer, loser: ProfileState) -> Refusal | None:
    """The decline reason if a ban of either side keeps the two apart, else None."""
    bans = (*offer.winner_bans, *loser.bans.values())
    if not bans:
        return None
    winner = [key for key, _ in offer.winner_linked]
    if not offer.winner_erased:  # an erased winner offers digests already
        winner = [identifier_digest(secret, key) for key in winner]
    mine = [identifier_digest(secret, key) for key in loser.linked()]
    for ban in bans:
        if ban.separates_digests(winner, mine):
            return refusals.ban(ban.ban_id)
    return None


def moved_to(secret: bytes, state: ProfileState, via: Identifier) -> str | None:
    """The profile a split moved `via` to, if this profile gave it up to a split: a merge
    through it (asked before the split was known) belongs with that side, which the ban's
    handshake then judges. None when `via` is here or left for another reason."""
    if via.key in state.identifiers:
        return None
    moved = state.moved_out.get(via.key)
    if moved is not None:  # left with a person an undone quarantine glue had joined here
        return moved
    reason = state.refused.get(via.key)
    if reason is None or reason.kind is not RefusalKind.BAN:
        return None
    ban = state.bans.get(reason.of)
    if ban is None:
        return None
    left, right = ban.sides_of(secret, [via.key])
    if right:
        return ban.right_profile
    if left:
        return ban.left_profile
    return None


def join_operations(winner: ProfileState, loser: ProfileState) -> None:
    """Bans, remembered operations and where moved identifiers went travel with the
    identifiers into the survivor."""
    for ban_id, ban in loser.bans.items():
        winner.bans.setdefault(ban_id, ban)
    # What left for one of the two, or for any profile either had absorbed (an undo's new
    # profile that merged back), is here now: pointing there would send a merge through it
    # round between this profile and the merged one, which forwards it here, for ever.
    here = winner.absorbed | {winner.profile_id, loser.profile_id}
    for key, moved in loser.moved_out.items():
        if key not in winner.identifiers and moved not in here:
            winner.moved_out.setdefault(key, moved)
    for key in [k for k, moved in winner.moved_out.items() if moved in here]:
        del winner.moved_out[key]
    trim(winner.moved_out, MOVED_OUT_WINDOW)
    for key in loser.released:
        remember(winner.released, key, MOVED_OUT_WINDOW)
    for request_id in loser.operations:
        _remember(winner, request_id)
