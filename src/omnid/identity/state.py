"""What the graph remembers: one IdentifierState per identifier key, one ProfileState per profile.

States are mutable on purpose: a handler takes ownership of the state it is given and returns
it (or a replacement). Copying a profile on every event made the core several times slower,
and the shell never keeps the old object (it stores `records.encode(state)` in RocksDB).
"""

from __future__ import annotations

import functools
import hashlib
import hmac
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TypeVar

from omnid.identity.model import Event, EventDigest, Identifier, Scalar
from omnid.identity.refusals import Refusal

if TYPE_CHECKING:
    from omnid.identity.commands import ProfileCommand

_K = TypeVar("_K")
_V = TypeVar("_V")

# Survivorship order of a value: (event_time, source_priority, event_id); greatest wins.
Stamp = tuple[int, int, str]


class IdentifierStatus(StrEnum):
    ACTIVE = "active"
    QUARANTINED = "quarantined"
    SUPPRESSED = "suppressed"


class LinkRule(StrEnum):
    """Why an identifier joined its profile (the `rule` of its evidence and of ProfileUpdate)."""

    ANCHOR = "anchor"  # the event's first identifier nobody owned founded the profile
    SAME_EVENT = "same_event"  # it came in an event the profile counted
    RELEASED = "released"  # its previous profile refused it: it founded one of its own


class ProfileStatus(StrEnum):
    ACTIVE = "active"
    MERGED = "merged"
    ERASED = "erased"


# Claimants an identifier remembers to ask again after a release (`turned_away`). A bound,
# because a shared tablet is claimed by every customer who logs in on it; beyond it the oldest
# are forgotten.
TURNED_AWAY_WINDOW = 32


@dataclass(frozen=True, slots=True)
class Claimant:
    """One known profile's latest claim of an identifier: when, and the channel and source of
    the event (what the quarantine review shows; never the profile's data)."""

    at: int
    channel: str = ""
    source: str = ""


@dataclass(slots=True)
class IdentifierState:
    """Who owns an identifier. `epoch` grows when the owner releases it, so ownership messages
    of an earlier epoch that are still in flight are recognised and ignored."""

    identifier: Identifier
    owner: str | None = None
    status: IdentifierStatus = IdentifierStatus.ACTIVE
    epoch: int = 0
    first_seen: int | None = None
    last_seen: int | None = None
    refused_by: set[str] = field(default_factory=set)
    recent_events: dict[EventDigest, None] = field(default_factory=dict)
    # Profiles whose claim found another owner (oldest first, bounded): when the identifier is
    # released to a profile of its own, each is asked again, so no link is lost to the timing.
    turned_away: dict[str, None] = field(default_factory=dict)
    # The privacy request that suppressed (or erased) it. An erased identifier is stored only as
    # a suppression marker: this id under an HMAC of its key (identity/privacy.py). A blocked
    # quarantined value is such a marker too, suppressed by `block:<request id>`.
    suppressed_by: str | None = None
    # Quarantine (identity/quarantine.py), for types with `quarantine_after`: the latest claim
    # of each known profile that claimed it (profile id, or `seen:<digest>` for a customer who
    # came to its owner through it) -> (event time, channel, source), bounded; when it was
    # quarantined; and the operator request that released it (it then never quarantines again).
    claimants: dict[str, Claimant] = field(default_factory=dict)
    quarantined_at: int | None = None
    released_by: str | None = None


@dataclass(frozen=True, slots=True)
class ProfileIdentifier:
    """An identifier a profile holds, with where it came from: the event that linked it (id,
    time, channel, source), the rule, and `linked_by`, the identifier of that event the profile
    already held (None for the identifier a profile was founded on). This is its evidence, and
    it travels with the identifier through merges and splits."""

    type: str
    value: str
    added_at: int
    event_id: str
    rule: LinkRule
    epoch: int = 0
    channel: str = ""
    source: str = ""
    linked_by: str | None = None
    # Quarantined: held (events with only it still count here) but it links nothing.
    quarantined: bool = False

    @property
    def key(self) -> str:
        """The identifier key, under which the profile holds it."""
        return f"{self.type}:{self.value}"


@dataclass(frozen=True, slots=True)
class TraitValue:
    value: Scalar
    event_time: int
    source_priority: int
    event_id: str

    @property
    def stamp(self) -> Stamp:
        return (self.event_time, self.source_priority, self.event_id)


@dataclass(frozen=True, slots=True)
class OrderLine:
    amount: float
    currency: str
    stamp: Stamp


@dataclass(frozen=True, slots=True)
class ConsentState:
    """Consent for one purpose: the latest change by (event time, source priority, event id),
    the source that sent it, and whether merged profiles disagreed on it since then."""

    granted: bool
    stamp: Stamp
    source: str = ""
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class MergeEvidence:
    """One merge a profile took part in as the survivor: the profile absorbed, the identifier
    it came through (`via`), the identifier of the linking event on the other side
    (`linked_by`, None when that event has left the history) and the event. A merge by hand
    names its operator; `via`/`linked_by` are then one identifier of each side."""

    other: str
    via: str
    linked_by: str | None
    event_id: str
    at: int
    operator: str | None = None


@dataclass(frozen=True, slots=True)
class Ban:
    """A re-link ban from a split: no profile may hold identifiers of both sides, what the
    split profile kept (`left`) and what the operator named (`right`), until an unban lifts it.
    The sides are kept only to recognise identifiers again, so they hold keyed digests
    (`identifier_digest`), never a clear key: a ban travels to every profile either side
    merges into, and an erase of one side must leave nothing of it in the other's bans. (Bans
    written in clear by builds before this field existed read with empty sides.)"""

    ban_id: str
    left_profile: str
    right_profile: str
    at: int
    operator: str
    left_digests: tuple[str, ...] = ()
    right_digests: tuple[str, ...] = ()

    def sides_of(self, secret: bytes, keys: Iterable[str]) -> tuple[list[str], list[str]]:
        """The keys among `keys` on the left side and on the right side."""
        by_digest = {identifier_digest(secret, key): key for key in keys}
        left, right = self.sides_of_digests(by_digest)
        return [by_digest[d] for d in left], [by_digest[d] for d in right]

    def sides_of_digests(self, digests: Iterable[str]) -> tuple[list[str], list[str]]:
        """The digests among `digests` on the left side and on the right side."""
        left_digests, right_digests = set(self.left_digests), set(self.right_digests)
        left = [d for d in digests if d in left_digests]
        right = [d for d in digests if d in right_digests and d not in left_digests]
        return left, right

    def separates(self, secret: bytes, a: Iterable[str], b: Iterable[str]) -> bool:
        """Whether joining identifier sets `a` and `b` would put both sides in one profile."""
        return self.separates_digests(
            [identifier_digest(secret, key) for key in a],
            [identifier_digest(secret, key) for key in b],
        )

    def separates_digests(self, a: Iterable[str], b: Iterable[str]) -> bool:
        """`separates` for identifier sets given as their digests (what an erased profile
        keeps of the identifiers it erased)."""
        a_left, a_right = self.sides_of_digests(a)
        b_left, b_right = self.sides_of_digests(b)
        return bool((a_left and b_right) or (a_right and b_left))


def identifier_digest(secret: bytes, identifier_key: str) -> str:
    """A keyed digest of a normalised identifier key, for what is kept only to recognise the
    identifier again (suppression markers, re-link bans): an HMAC, so a dictionary of emails
    cannot be hashed and compared against it without the secret. 128 bits of HMAC-SHA-256
    keep collisions out of reach."""
    mac = _keyed(secret).copy()  # the key's pads are hashed once: a third of hmac.new's cost
    mac.update(identifier_key.encode())
    return mac.digest()[:16].hex()


@functools.lru_cache(maxsize=4)  # a process has one or two secrets (suppression, recognition)
def _keyed(secret: bytes) -> hmac.HMAC:
    """HMAC-SHA-256 keyed with `secret`, before any message."""
    return hmac.new(secret, digestmod=hashlib.sha256)


@dataclass(slots=True)
class EventHistory:
    """The latest events of a profile, enough to recompute its traits and counters (a split
    needs them). Beyond the bound the oldest event leaves `events` and is folded into
    `residue`, an aggregate of the forgotten events, so the profile stays exact; a split keeps
    the residue on the side that stays. Stored in its own table (`history`)."""

    events: dict[str, Event] = field(default_factory=dict)
    residue: ProfileState | None = None


@dataclass(slots=True)
class ProfileState:
    """A profile: identifiers with provenance, surviving traits, computed attributes, and the
    bookkeeping that keeps every handler idempotent (applied event ids, absorbed profiles)."""

    profile_id: str
    created_at: int
    status: ProfileStatus = ProfileStatus.ACTIVE
    merged_into: str | None = None
    version: int = 0
    identifiers: dict[str, ProfileIdentifier] = field(default_factory=dict)
    traits: dict[str, TraitValue] = field(default_factory=dict)
    # computed attributes
    event_count: int = 0
    first_seen: int | None = None
    last_seen: int | None = None
    last_channel: str | None = None
    last_channel_stamp: Stamp | None = None
    channel_counts: dict[str, int] = field(default_factory=dict)
    orders: dict[str, OrderLine] = field(default_factory=dict)
    consent: dict[str, ConsentState] = field(default_factory=dict)
    # idempotence: event digest -> channel (a bounded, insertion-ordered window), absorbed profiles
    applied: dict[EventDigest, str] = field(default_factory=dict)
    absorbed: set[str] = field(default_factory=set)
    merged_from: list[str] = field(default_factory=list)
    # events this profile sent back to their anchor (bounded like `applied`): a second delivery
    # of the same weakly-found Apply may meet a state that would take it, and must not
    passed_on: dict[EventDigest, None] = field(default_factory=dict)
    # limits: profiles a merge with was declined, identifiers refused (key -> reason)
    declined: dict[str, Refusal] = field(default_factory=dict)
    refused: dict[str, Refusal] = field(default_factory=dict)
    # identifiers this profile claimed and has not heard back about (key -> type): they count
    # towards limits when deciding whether another event or profile fits here
    claimed: dict[str, str] = field(default_factory=dict)
    # merge coordination: the newer profile this one has offered a merge to, and what waits;
    # `offers` numbers the offers it made (the one awaited is the latest): an answer carries
    # its offer's number, so a duplicate answer to an earlier offer frees nothing
    awaiting: str | None = None
    offers: int = 0
    deferred: list[ProfileCommand] = field(default_factory=list)
    cause_kind: str = "created"
    cause_event_id: str | None = None
    updated_at: int = 0
    # privacy: the request that erased the profile (an erased profile keeps nothing else but
    # what it erased, as counts, for the receipt) or suppressed its identifiers
    erased_by: str | None = None
    erased_counts: dict[str, int] = field(default_factory=dict)
    suppressed_by: str | None = None
    # What an erased profile keeps to judge a merge that was still on its way to the person
    # when the erasure ran (identity/privacy.py): the identifiers it erased as digest -> type
    # (`identifier_digest`, never a key) and the completed receipt (no personal data), sent
    # again with the new counts when such a merge is erased too. A profile id merged into the
    # person keeps neither: `erased_with` names the stub that does.
    erased_linked: dict[str, str] = field(default_factory=dict)
    erased_receipt: dict[str, Any] | None = None
    erased_with: str | None = None
    # evidence of merges (latest MERGE_EVIDENCE_WINDOW), re-link bans, operations already done
    merges: list[MergeEvidence] = field(default_factory=list)
    bans: dict[str, Ban] = field(default_factory=dict)
    operations: dict[str, None] = field(default_factory=dict)
    history: EventHistory = field(default_factory=EventHistory)
    # identifiers an undone quarantine glue moved to another profile (key -> that profile,
    # bounded): messages about them still in flight here are sent on there
    moved_out: dict[str, str] = field(default_factory=dict)
    # quarantined identifiers released since (bounded): an Unlink of one that arrives late (it
    # waited behind a merge, or took a longer way here than the release) is stale
    released: dict[str, None] = field(default_factory=dict)

    def count_of(self, identifier_type: str) -> int:
        return sum(1 for held in self.identifiers.values() if held.type == identifier_type)

    def type_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for held in self.identifiers.values():
            counts[held.type] = counts.get(held.type, 0) + 1
        return counts

    def linked(self) -> dict[str, str]:
        """Held plus claimed identifiers (key -> type): what the profile holds if all goes well."""
        keys = {key: held.type for key, held in self.identifiers.items()}
        for key, identifier_type in self.claimed.items():
            keys.setdefault(key, identifier_type)
        return keys

    def linked_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for identifier_type in self.linked().values():
            counts[identifier_type] = counts.get(identifier_type, 0) + 1
        return counts


# --- bounded windows ---------------------------------------------------------------------------
# Dicts used as insertion-ordered sets of what a state last saw (events, claimants, requests):
# each is bounded, and past its bound the oldest entries are forgotten.


def remember(window: dict[_K, None], key: _K, limit: int) -> None:
    """Add `key` to `window` (where it already is, it keeps its place) and trim to `limit`."""
    window[key] = None
    trim(window, limit)


def trim(window: dict[_K, _V], limit: int) -> None:
    """Forget the oldest entries of `window` beyond `limit`."""
    while len(window) > limit:
        del window[next(iter(window))]
