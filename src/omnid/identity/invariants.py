"""Checks of the graph invariants (ARCHITECTURE.md §5: 1-6, 9-11) on a finished simulation.

Used by the property tests and usable against any run that can be loaded as states.
Each check raises AssertionError with a message that names identifiers and profiles.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from omnid.identity.components import components, strong_components
from omnid.identity.intake import usable_identifiers
from omnid.identity.model import Event, EventDigest, event_digest
from omnid.identity.privacy import BLOCK_PREFIX
from omnid.identity.quarantine import UNLINKING_KINDS
from omnid.identity.rendering import profile_update_record
from omnid.identity.rules import IdentityRules, NormalisationCache
from omnid.identity.simulator import SimulationResult
from omnid.identity.state import (
    Ban,
    IdentifierStatus,
    ProfileState,
    ProfileStatus,
    identifier_digest,
)
from omnid.identity.survivorship import apply_event, revenue


def check_limits(rules: IdentityRules, profile: ProfileState) -> None:
    """Invariant 3 for one profile (call it after every step)."""
    if profile.status is not ProfileStatus.ACTIVE:
        return
    for identifier_type, count in profile.type_counts().items():
        limit = rules.limit(identifier_type)
        assert limit is None or count <= limit, (
            f"profile {profile.profile_id} holds {count} {identifier_type} (limit {limit})"
        )


def check_no_weak_merge(
    rules: IdentityRules,
    strong_groups: Mapping[str, str],
    profile: ProfileState,
    unlinking: frozenset[str] = frozenset(),
) -> None:
    """Over-merge protection (call it after every step): the strong identifiers of an active
    profile are linked by events through strong identifiers alone, never only through a weak
    one, nor only through one in `unlinking` (quarantined: invariant 10). `strong_groups` is
    `strong_components(rules, events, unlinking=unlinking)` of all events of the run."""
    if profile.status is not ProfileStatus.ACTIVE:
        return
    weak = rules.weak_types
    groups: dict[str, str] = {}
    for key, held in profile.identifiers.items():
        if held.type not in weak and key not in unlinking:
            groups.setdefault(strong_groups.get(key, key), key)
    assert len(groups) <= 1, (
        f"profile {profile.profile_id} holds {sorted(groups.values())}, which only a weak "
        f"identifier or quarantined {sorted(unlinking & set(profile.identifiers))} link"
    )


def check_bans(rules: IdentityRules, bans: Iterable[Ban], profile: ProfileState) -> None:
    """Invariant 9 for one profile (call it after every step with the bans in force)."""
    if profile.status is not ProfileStatus.ACTIVE:
        return
    for ban in bans:
        left, right = ban.sides_of(rules.recognition_key, sorted(profile.identifiers))
        assert not (left and right), (
            f"profile {profile.profile_id} holds {left} and {right}, on both sides of ban "
            f"{ban.ban_id}"
        )


def check_all(
    rules: IdentityRules,
    events: list[Event],
    result: SimulationResult,
    *,
    split: bool = False,
    lifted: Iterable[Ban] = (),
    joined: Iterable[tuple[str, str]] = (),
    released: frozenset[str] = frozenset(),
) -> None:
    """All checks on a finished run; identifiers quarantined at its end link nothing (invariant
    10: no profile holds people only they join, every other link is kept). `split`: operators
    split profiles, so components are no longer the oracle (a split cuts them on purpose).
    `lifted`: bans an unban lifted (what they kept apart may stay apart until a shared event
    arrives). `joined`: pairs of strong identifiers whose profiles were merged by hand (linked,
    like a strong event). `released`: identifiers released from quarantine (they link again
    from the claims they recorded, so links through them are not all back yet)."""
    active = result.active_profiles()
    # Every check normalises the events' identifiers again: once each is enough.
    cache = NormalisationCache(rules)
    check_quiescent(active)
    check_ownership(rules, events, result, cache)  # 2
    unlinking = unlinking_keys(result)
    check_held(rules, events, result, cache)
    strong_groups = strong_components(rules, events, joined, cache, unlinking)
    for profile in active.values():
        check_limits(rules, profile)  # 3
        check_no_weak_merge(rules, strong_groups, profile, unlinking)  # and 10
    check_event_counts(result, _only_blocked(rules, events, result, cache))  # 4
    check_chains(result)  # 5
    check_survivorship(rules, events, result, cache, components_apply=not split)  # 6, 11
    check_updates(result)
    check_links(rules, events, result, cache, lifted, unlinking | released)  # and 10
    check_quarantined(rules, result, unlinking)
    if not rules.limits and not rules.weak_types and not split:
        check_components(rules, events, result, cache)  # 1


def check_quiescent(active: dict[str, ProfileState]) -> None:
    for profile in active.values():
        assert profile.awaiting is None, f"{profile.profile_id} still awaits {profile.awaiting}"
        assert not profile.deferred, f"{profile.profile_id} still defers {profile.deferred}"


def blocked_keys(result: SimulationResult) -> set[str]:
    """The identifiers an operator blocked (suppression markers of a quarantine block)."""
    return {
        key
        for key, state in result.identifiers.items()
        if (state.suppressed_by or "").startswith(BLOCK_PREFIX)
    }


def check_held(
    rules: IdentityRules, events: list[Event], result: SimulationResult, cache: NormalisationCache
) -> None:
    """Every active profile holds an identifier, unless it held a value an operator blocked
    and nothing else links its events (their other identifiers are blocked or quarantined)."""
    unlinking = unlinking_keys(result)
    blocked = blocked_keys(result)
    by_digest = {e.digest: e for e in events}
    for profile in result.active_profiles().values():
        if profile.identifiers:
            continue
        keys = {
            i.key
            for digest in profile.applied
            for i in usable_identifiers(rules, by_digest[digest].identifiers, cache)[0]
        }
        assert blocked and keys <= unlinking, (
            f"active profile {profile.profile_id} holds no identifier"
        )


def _valid_keys(
    rules: IdentityRules, events: Iterable[Event], cache: NormalisationCache
) -> set[str]:
    keys: set[str] = set()
    for event in events:
        identifiers, _ = usable_identifiers(rules, event.identifiers, cache)
        keys.update(i.key for i in identifiers)
    return keys


def check_components(
    rules: IdentityRules, events: list[Event], result: SimulationResult, cache: NormalisationCache
) -> None:
    """Invariant 1: without limits, profiles partition identifiers like union-find does."""
    expected = set(components(rules, events, cache))
    actual = {frozenset(p.identifiers) for p in result.active_profiles().values()}
    missing = sorted(sorted(c) for c in expected - actual)
    extra = sorted(sorted(c) for c in actual - expected)
    assert expected == actual, f"components differ: expected {missing}, got {extra}"


def check_ownership(
    rules: IdentityRules, events: list[Event], result: SimulationResult, cache: NormalisationCache
) -> None:
    """Invariant 2: each valid identifier that is not blocked has one owner whose chain ends at
    a profile listing it, and no other active profile lists it."""
    holders: dict[str, list[str]] = {}
    for profile_id, profile in result.active_profiles().items():
        for key in profile.identifiers:
            holders.setdefault(key, []).append(profile_id)
    valid = _valid_keys(rules, events, cache)
    for key in sorted(valid):
        state = result.identifiers.get(key)
        if state is not None and state.status is IdentifierStatus.SUPPRESSED and not state.owner:
            continue  # blocked (a suppression marker): nobody holds it
        assert state is not None and state.owner is not None, f"{key} has no owner"
        survivor = result.survivor(state.owner)
        assert holders.get(key) == [survivor], (
            f"{key}: owner chain ends at {survivor}, held by {holders.get(key)}"
        )
    stray = set(holders) - valid
    assert not stray, f"profiles hold identifiers no event had: {sorted(stray)}"


def check_links(
    rules: IdentityRules,
    events: list[Event],
    result: SimulationResult,
    cache: NormalisationCache,
    lifted: Iterable[Ban] = (),
    unlinking: frozenset[str] = frozenset(),
) -> None:
    """No merge is lost: an identifier of an event held outside the profile that counts the
    event is there for a recorded reason (a declined merge, a refused identifier, or a split
    whose ban was lifted: the sides merge again only on a new shared event). Identifiers in
    `unlinking` (quarantined) link nothing, so where they are proves nothing."""
    unbanned = {digest for ban in lifted for digest in (*ban.left_digests, *ban.right_digests)}
    counted_by = {e: p for p in result.active_profiles().values() for e in p.applied}
    for event in events:
        counter = counted_by.get(event.digest)
        if counter is None:
            continue
        usable = usable_identifiers(rules, event.identifiers, cache)[0]
        # A refusal because of a quarantine holds only while the event still carries an
        # identifier that links nothing: once that is released, the link counts again.
        unlinked = any(i.key in unlinking for i in usable)
        for identifier in usable:
            if identifier.key in unlinking:
                continue
            holder = result.profile_of(identifier.key)
            assert holder is not None, f"{identifier.key} has no profile"
            if (
                holder is counter
                or identifier_digest(rules.recognition_key, identifier.key) in unbanned
            ):
                continue
            # A declined pair stays declined when either side absorbs more profiles (the union
            # only grows), so compare whole lineages.
            holder_lineage = {holder.profile_id, *holder.absorbed}
            counter_lineage = {counter.profile_id, *counter.absorbed}
            refused_by = result.identifiers[identifier.key].refused_by
            assert (
                holder_lineage & set(counter.declined)
                or counter_lineage & set(holder.declined)
                or _refused(counter, identifier.key, unlinked)
                or refused_by & set(counter.declined)
            ), (
                f"{event.event_id} counted by {counter.profile_id} but {identifier.key} is held by "
                f"{holder.profile_id} with no decline or refusal recorded"
            )


def _refused(profile: ProfileState, key: str, unlinked: bool) -> bool:
    refusal = profile.refused.get(key)
    return refusal is not None and (unlinked or refusal.kind not in UNLINKING_KINDS)


def unlinking_keys(result: SimulationResult) -> frozenset[str]:
    """The identifiers that link nothing at the end of a run: quarantined and blocked ones."""
    return frozenset(
        key
        for key, state in result.identifiers.items()
        if state.status is IdentifierStatus.QUARANTINED
        or (state.suppressed_by or "").startswith(BLOCK_PREFIX)
    )


def check_quarantined(
    rules: IdentityRules, result: SimulationResult, unlinking: frozenset[str]
) -> None:
    """Each identifier still quarantined had `quarantine_after` known claimants."""
    for key in unlinking:
        state = result.identifiers[key]
        if state.status is not IdentifierStatus.QUARANTINED:
            continue
        quarantine = rules.quarantine(state.identifier.type)
        assert quarantine is not None, f"{key} is quarantined but its type has no threshold"
        # Later claims move a claimant's time on, so only their number is checked.
        assert len(state.claimants) >= quarantine[0], (
            f"{key} quarantined with {len(state.claimants)} claimants"
        )


def _only_blocked(
    rules: IdentityRules, events: list[Event], result: SimulationResult, cache: NormalisationCache
) -> frozenset[str]:
    """The events whose every usable identifier an operator blocked: one that reached the graph
    after the block is dropped there (`SuppressedDrop`), as the blocklist drops it at intake."""
    blocked = blocked_keys(result)
    if not blocked:
        return frozenset()
    return frozenset(
        event.event_id
        for event in events
        if {i.key for i in usable_identifiers(rules, event.identifiers, cache)[0]} <= blocked
    )


def check_event_counts(result: SimulationResult, droppable: frozenset[str] = frozenset()) -> None:
    """Invariant 4: every valid event counted by exactly one active profile (`droppable`: or
    by none, if it was dropped as suppressed)."""
    counted: dict[EventDigest, str] = {}
    total = 0
    for profile_id, profile in result.active_profiles().items():
        total += profile.event_count
        assert profile.event_count == len(profile.applied), (
            f"{profile_id}: event_count {profile.event_count} != {len(profile.applied)} applied"
        )
        for event_id in profile.applied:
            assert event_id not in counted, (
                f"{event_id} counted by {counted.get(event_id)} and {profile_id}"
            )
            counted[event_id] = profile_id
    valid = {event_digest(event_id): event_id for event_id in result.valid_event_ids}
    lost = {valid[d] for d in set(valid) - set(counted)}
    dropped = lost & droppable
    assert lost == dropped and set(counted) <= set(valid), (
        f"lost {sorted(lost - dropped)}, unknown digests {sorted(set(counted) - set(valid))}"
    )
    assert len(dropped) <= result.suppressed_events, (dropped, result.suppressed_events)
    assert total == len(result.valid_event_ids) - len(dropped)


def check_chains(result: SimulationResult) -> None:
    """Invariant 5: merged_into chains are acyclic and strictly decreasing in id."""
    for profile_id, profile in result.profiles.items():
        if profile.status is ProfileStatus.MERGED:
            assert profile.merged_into is not None and profile.merged_into < profile_id, (
                f"{profile_id} merged into {profile.merged_into}"
            )
            result.survivor(profile_id)


def serial_profile(rules: IdentityRules, profile_id: str, events: list[Event]) -> ProfileState:
    """What survivorship gives when a profile's events are applied one by one."""
    expected = ProfileState(profile_id, created_at=0)
    for event in events:
        apply_event(
            expected, event, rules.source_priority(event.channel), rules.applied_event_window
        )
    return expected


def check_survivorship(
    rules: IdentityRules,
    events: list[Event],
    result: SimulationResult,
    cache: NormalisationCache,
    *,
    components_apply: bool = True,
) -> None:
    """Invariant 6 (and 11 after splits): traits and counters equal a serial computation over
    the profile's events (in reverse order, to show order does not matter). Without limits
    (and splits) the profile's events must also be exactly its component's events."""
    by_digest = {e.digest: e for e in events}
    for profile_id, profile in result.active_profiles().items():
        mine = sorted((by_digest[d] for d in profile.applied), key=lambda e: e.event_id)[::-1]
        if not rules.limits and not rules.weak_types and components_apply:
            linked = [
                e.digest
                for e in by_digest.values()
                if e.event_id in result.valid_event_ids
                and {i.key for i in usable_identifiers(rules, e.identifiers, cache)[0]}
                & set(profile.identifiers)
            ]
            assert sorted(linked) == sorted(profile.applied), (
                f"{profile_id} counted {sorted(profile.applied)}, component has {sorted(linked)}"
            )
        expected = serial_profile(rules, profile_id, mine)
        for name in ("traits", "event_count", "first_seen", "last_seen", "last_channel"):
            assert getattr(profile, name) == getattr(expected, name), (
                f"{profile_id}.{name}: {getattr(profile, name)} != {getattr(expected, name)}"
            )
        for name in ("channel_counts", "orders"):
            assert getattr(profile, name) == getattr(expected, name), (
                f"{profile_id}.{name}: {getattr(profile, name)} != {getattr(expected, name)}"
            )
        # A consent conflict records that merged profiles disagreed: it depends on the merges,
        # so only what it marks (the winning change and its source) is compared.
        consent = {p: (c.granted, c.stamp, c.source) for p, c in profile.consent.items()}
        serial = {p: (c.granted, c.stamp, c.source) for p, c in expected.consent.items()}
        assert consent == serial, f"{profile_id}.consent: {consent} != {serial}"
        assert revenue(profile) == revenue(expected)


def check_updates(result: SimulationResult) -> None:
    """The last ProfileUpdate per profile is the final state; merged profiles were tombstoned."""
    active = result.active_profiles()
    assert set(result.updates) == set(active), (
        f"updates for {sorted(set(result.updates) ^ set(active))} do not match active profiles"
    )
    for profile_id, record in result.updates.items():
        assert record == profile_update_record(active[profile_id]), f"stale update {profile_id}"
    merged = {p for p, s in result.profiles.items() if s.status is ProfileStatus.MERGED}
    assert merged <= result.tombstoned, f"not tombstoned: {sorted(merged - result.tombstoned)}"
