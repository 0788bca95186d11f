"""Messages between graph entities (commands) and what the graph publishes (emissions).

Every command has `.key` and `.stage`: Stage.IDENTITY commands go to omnid.identity-commands
keyed by identifier key, Stage.PROFILE commands to omnid.profile-commands keyed by profile id.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from omnid.identity.model import Event, Identifier
from omnid.identity.refusals import Refusal
from omnid.identity.rendering import ChangeKind, identity_change_record, profile_update_record
from omnid.identity.requests import (
    PrivacyIdentityCommand,
    PrivacyProfileCommand,
    PrivacyReceiptEmission,
    SuppressedDrop,
)
from omnid.identity.stages import Stage
from omnid.identity.state import Ban, LinkRule, ProfileState

# --- identity-stage commands (keyed by identifier key) ---------------------------------------


@dataclass(frozen=True, slots=True)
class Resolve:
    """Find the profile an event belongs to by probing its identifiers in priority order.
    `create` (a bounce from a profile that cannot take the event) makes the anchor
    identifier found a profile of its own instead of probing further."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    event: Event
    probe: int = 0
    create: bool = False
    # Identifiers of the event left out on the way because they were quarantined (they route
    # nothing): the profile that takes the event still claims them, so it is a claimant that a
    # release asks again.
    passed: tuple[Identifier, ...] = ()

    @property
    def key(self) -> str:
        return self.event.identifiers[self.probe].key


@dataclass(frozen=True, slots=True)
class Claim:
    """Profile `profile_id` saw `identifier` in event `event_id` and wants to hold it. `known`:
    the profile stands for a known person (holds a strong identifier besides this one); known
    claims, with the event's channel and source, count towards the type's quarantine.
    `again`: made again by a profile that had refused the identifier only because a quarantined
    one had joined it there, now that something else joins it (a release, or an event carrying
    both): the identifier forgets that refusal."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    profile_id: str
    event_id: str
    at: int
    known: bool = False
    channel: str = ""
    source: str = ""
    again: bool = False

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class Relabel:
    """The owner merged into the older `profile_id`: move ownership there (only ever older)."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    profile_id: str
    epoch: int

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class Release:
    """`profile_id` refused `identifier` (over a limit): the identifier must find another home."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    profile_id: str
    epoch: int
    event_id: str
    at: int
    reason: Refusal

    @property
    def key(self) -> str:
        return self.identifier.key


# --- profile-stage commands (keyed by profile id) -------------------------------------------


@dataclass(frozen=True, slots=True)
class Apply:
    """Count an event in a profile. `probe` > 0 means the profile was found through a lower
    priority identifier, so the profile must be able to hold the event's higher ones."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    event: Event
    probe: int = 0
    passed: tuple[Identifier, ...] = ()  # as Resolve.passed

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class Attach:
    """The identifier now points at `profile_id`: add it, or refuse it if over a limit. With
    `move`, it still points at the profile that sent this on (a claim a split or an undo moved
    here), in `epoch`: the receiver moves it to itself first (MoveOwner, as a SplitOff's new
    profile does), so nothing the identifier routes here can come before this profile exists."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    identifier: Identifier
    epoch: int
    event_id: str
    at: int
    rule: LinkRule
    move: bool = False

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class Found:
    """Resolve made the event's identifier `probe` (in ownership `epoch`) point at the new
    profile `profile_id`: the profile's anchor Attach and the event's Apply in one command. Both
    are keyed by the profile and were sent together, so nothing could come between them but
    what any schedule allows; the profile handles the two parts in that order (`parts`)."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    event: Event
    probe: int
    epoch: int
    passed: tuple[Identifier, ...] = ()  # as Resolve.passed

    @property
    def key(self) -> str:
        return self.profile_id

    def parts(self) -> tuple[Attach, Apply]:
        event = self.event
        anchor = event.identifiers[self.probe]
        attach = Attach(
            self.profile_id,
            anchor,
            self.epoch,
            event.event_id,
            event.event_time,
            LinkRule.ANCHOR,
        )
        return attach, Apply(self.profile_id, event, self.probe, self.passed)


@dataclass(frozen=True, slots=True)
class MergeRequest:
    """Two profiles share an identifier; sent to the older one (`winner`), which coordinates."""

    stage: ClassVar[Stage] = Stage.PROFILE
    winner: str
    loser: str
    via: Identifier
    event_id: str
    at: int
    # `via` had been released from quarantine when this was asked: it links again, whatever
    # either profile has heard of the release so far (quarantine.note_release).
    released: bool = False

    @property
    def key(self) -> str:
        return self.winner


@dataclass(frozen=True, slots=True)
class MergeOffer:
    """The winner offers to absorb the loser, listing the identifiers it holds or has claimed
    (key, type); the winner changes no identifiers until the loser answers."""

    stage: ClassVar[Stage] = Stage.PROFILE
    winner: str
    loser: str
    winner_linked: tuple[tuple[str, str], ...]
    via: Identifier
    event_id: str
    at: int
    # the winner's re-link bans: the loser refuses if joining would put both sides together
    winner_bans: tuple[Ban, ...] = ()
    # An erased profile offering itself to a merge that was on its way to the person it erased
    # (identity/privacy.py): `winner_linked` then holds digests, not keys. Accepting means
    # being erased too, by the Absorb; declining leaves nothing of the link behind.
    winner_erased: bool = False
    # The winner's number for this offer (`ProfileState.offers`), which the answer carries back:
    # a late duplicate of the answer to an earlier offer of the same pair is known as such.
    offer: int = 0
    released: bool = False  # as MergeRequest.released

    @property
    def key(self) -> str:
        return self.loser


@dataclass(frozen=True, slots=True)
class MergeDeclined:
    """The loser refused: together they would exceed a limit. Both sides remember the pair."""

    stage: ClassVar[Stage] = Stage.PROFILE
    winner: str
    loser: str
    reason: Refusal
    via: Identifier
    event_id: str
    at: int
    offer: int = 0  # the declined offer's number (MergeOffer.offer)

    @property
    def key(self) -> str:
        return self.winner


@dataclass(frozen=True, slots=True)
class OfferRedirected:
    """The offer reached a profile already merged into `successor`: ask again with that one."""

    stage: ClassVar[Stage] = Stage.PROFILE
    winner: str
    loser: str
    successor: str
    via: Identifier
    event_id: str
    at: int
    offer: int = 0  # the redirected offer's number (MergeOffer.offer)
    released: bool = False  # as MergeRequest.released

    @property
    def key(self) -> str:
        return self.winner


@dataclass(frozen=True, slots=True)
class Absorb:
    """The loser accepted: its whole state moves into the winner."""

    stage: ClassVar[Stage] = Stage.PROFILE
    winner: str
    loser: ProfileState
    via: Identifier
    event_id: str
    at: int

    @property
    def key(self) -> str:
        return self.winner


# --- operator commands (identity operations: split, unban, merge by hand) --------------------


@dataclass(frozen=True, slots=True)
class Split:
    """An operator's request: the named identifiers (keys), and the events that came only
    through them, leave `profile_id` for a new profile, with a re-link ban between the two.
    `request_id` makes it idempotent; `at` is when it was asked (epoch ms)."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    identifiers: tuple[str, ...]
    operator: str
    request_id: str
    at: int

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class SplitOff:
    """The new side of a split: its whole initial state, sent by the split profile, and what
    the new profile sends once it exists (`sends`: the MoveOwner of each identifier it takes,
    its claims). The new profile sends them, not the split one, so nothing their answers or the
    identifiers' new owner route to it can be handled before this state: the runtime hands a
    command for a partition of its own worker over at once, ahead of a SplitOff still waiting
    in that partition's topic (an Apply reached a profile that did not exist yet, which then
    dropped its SplitOff as a redelivery and never held its identifiers)."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile: ProfileState
    request_id: str
    at: int
    sends: tuple[MoveOwner | Claim, ...] = ()

    @property
    def key(self) -> str:
        return self.profile.profile_id


@dataclass(frozen=True, slots=True)
class MoveOwner:
    """A split moved `identifier` from its owner to the newer `profile_id`. Unlike a Relabel it
    moves to a newer profile, so it starts a new ownership epoch: relabels and releases still
    in flight from the old owner are then recognised as stale."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    profile_id: str
    epoch: int

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class Unban:
    """An operator lifts ban `ban_id` at `profile_id` (each side of the ban is told)."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    ban_id: str
    operator: str
    request_id: str
    at: int

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class MergeByHand:
    """An operator asks to merge `profile_id` with `other`: it runs as a MergeRequest through
    the normal protocol (limits, weak-link rule and bans hold), linked by the operator."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    other: str
    operator: str
    request_id: str
    at: int

    @property
    def key(self) -> str:
        return self.profile_id


# --- quarantine (identity/quarantine.py) -------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sighting:
    """The owner of `identifier` took an event found through it that brought a known person new
    to the profile (strong identifiers it does not hold): like a known claim, it counts towards
    quarantine. `slot` names that person without their data (`seen:<digest>`)."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    slot: str
    event_id: str
    at: int
    channel: str = ""
    source: str = ""

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class QuarantineRelease:
    """An operator lets a quarantined identifier link again: the merges it had follow again
    from its recorded claims, and it is never quarantined again."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    operator: str
    request_id: str
    at: int

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class QuarantineBlock:
    """An operator keeps a quarantined identifier out for good: it is dropped from every event
    like a blocked value, and kept only as a marker under an HMAC of its key."""

    stage: ClassVar[Stage] = Stage.IDENTITY
    identifier: Identifier
    operator: str
    request_id: str
    at: int

    @property
    def key(self) -> str:
        return self.identifier.key


@dataclass(frozen=True, slots=True)
class Unlink:
    """`identifier` was quarantined (at `at`, by a claim in event `event_id`): the profile
    holding it marks it so it links nothing more, and splits off every known person joined to
    it only through it. `drop` (a block): the profile lets go of the identifier too."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    identifier: Identifier
    event_id: str
    at: int
    drop: bool = False

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class Relink:
    """An operator released quarantined `identifier`: the holder lets it link again and asks
    each recorded claimant to merge through it, as their claims did before."""

    stage: ClassVar[Stage] = Stage.PROFILE
    profile_id: str
    identifier: Identifier
    claimants: tuple[str, ...]
    request_id: str
    at: int

    @property
    def key(self) -> str:
        return self.profile_id


IdentityCommand = (
    Resolve
    | Claim
    | Relabel
    | Release
    | MoveOwner
    | Sighting
    | QuarantineRelease
    | QuarantineBlock
    | PrivacyIdentityCommand
)
GraphProfileCommand = (
    Apply
    | Attach
    | MergeRequest
    | MergeOffer
    | MergeDeclined
    | OfferRedirected
    | Absorb
    | Split
    | SplitOff
    | Unban
    | MergeByHand
    | Unlink
    | Relink
)
# Found is handled as its parts (Attach, Apply), not by a handler of its own.
ProfileCommand = GraphProfileCommand | Found | PrivacyProfileCommand
Command = IdentityCommand | ProfileCommand


# --- emissions (published, never consumed by the graph) -------------------------------------


class ProfileSnapshot:
    """A profile changed; `record` is exactly an omnid.ProfileUpdate (times in epoch ms).

    The record is rendered from the live profile on first read, so a run that never publishes
    (the in-memory benchmark) or publishes once per batch does not pay for every change. Read
    it before the profile's next command is handled to get exactly this change; read later, it
    shows the profile as it is then (its own `version` field then exceeds `self.version`)."""

    __slots__ = ("_profile", "_record", "profile_id", "version")

    def __init__(
        self,
        profile_id: str,
        version: int,
        record: dict[str, Any] | None = None,
        *,
        profile: ProfileState | None = None,
    ) -> None:
        if record is None and profile is None:
            raise ValueError("a snapshot needs a record or the profile to render one from")
        self.profile_id = profile_id
        self.version = version
        self._record = record
        self._profile = profile

    @property
    def record(self) -> dict[str, Any]:
        if self._record is None:
            assert self._profile is not None
            self._record = profile_update_record(self._profile)
            self._profile = None
        return self._record

    @property
    def key(self) -> str:
        return self.profile_id

    def __repr__(self) -> str:
        return f"ProfileSnapshot({self.profile_id!r}, version={self.version})"


def touch(state: ProfileState, kind: str, event_id: str | None, at: int) -> ProfileSnapshot:
    """Count a change to the profile (version, cause, time): the snapshot that publishes it."""
    state.version += 1
    state.cause_kind = kind
    state.cause_event_id = event_id
    state.updated_at = max(state.updated_at, at)
    return ProfileSnapshot(state.profile_id, state.version, profile=state)


@dataclass(frozen=True, slots=True)
class ProfileTombstone:
    """The profile was merged away: publish a null value under its id (compaction drops it)."""

    profile_id: str

    @property
    def key(self) -> str:
        return self.profile_id


@dataclass(frozen=True, slots=True)
class IdentityChangeEmission:
    """`record` is exactly an omnid.IdentityChange."""

    record: dict[str, Any]

    @classmethod
    def of(
        cls,
        kind: ChangeKind,
        profile_id: str,
        other: str | None,
        identifiers: list[Identifier],
        event_id: str | None,
        reason: Refusal | None,
        at: int,
        operator: str | None = None,
        counts: dict[str, int] | None = None,
        quarantine: dict[str, Any] | None = None,
    ) -> IdentityChangeEmission:
        """The change rendered as its record (every handler module's one way to emit one)."""
        return cls(
            identity_change_record(
                kind,
                profile_id,
                other,
                identifiers,
                event_id,
                reason,
                at,
                operator=operator,
                counts=counts,
                quarantine=quarantine,
            )
        )

    @property
    def key(self) -> str:
        return str(self.record["profile_id"])

    @property
    def kind(self) -> ChangeKind:
        return ChangeKind(self.record["kind"])


Emission = (
    ProfileSnapshot
    | ProfileTombstone
    | IdentityChangeEmission
    | PrivacyReceiptEmission
    | SuppressedDrop
)
Output = Command | Emission
