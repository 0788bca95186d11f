"""Survivorship and computed attributes: how events and merged profiles combine into one profile.

Every rule is a join (max by stamp, min/max of times, union of id-keyed sets), so the result
does not depend on the order in which events and merges arrive.
"""

from __future__ import annotations

import math

from omnid.identity.model import Event
from omnid.identity.refusals import Refusal, RefusalKind
from omnid.identity.state import (
    ConsentState,
    OrderLine,
    ProfileState,
    Stamp,
    TraitValue,
    trim,
)


def apply_event(profile: ProfileState, event: Event, source_priority: int, window: int) -> None:
    """Count one event (the caller has checked it was not applied before)."""
    at = event.event_time
    stamp: Stamp = (at, source_priority, event.event_id)
    traits = profile.traits
    for name, value in event.traits.items():
        held = traits.get(name)
        if held is None or held.stamp < stamp:
            traits[name] = TraitValue(value, at, source_priority, event.event_id)
    profile.event_count += 1
    profile.channel_counts[event.channel] = profile.channel_counts.get(event.channel, 0) + 1
    if profile.first_seen is None or at < profile.first_seen:
        profile.first_seen = at
    if profile.last_seen is None or at > profile.last_seen:
        profile.last_seen = at
    if profile.last_channel_stamp is None or profile.last_channel_stamp < stamp:
        profile.last_channel, profile.last_channel_stamp = event.channel, stamp
    if event.purchase is not None:
        _keep_order(
            profile.orders,
            event.purchase.order_id,
            OrderLine(event.purchase.amount, event.purchase.currency, stamp),
        )
    if event.consent:
        for change in event.consent:
            state = ConsentState(change.granted, stamp, event.source)
            _keep_consent(profile.consent, change.purpose, state)
    profile.applied[event.digest] = event.channel
    trim(profile.applied, window)


def absorb(winner: ProfileState, loser: ProfileState, window: int) -> None:
    """Fold a merged-away profile into the survivor with the same rules as apply_event."""
    winner.identifiers.update(loser.identifiers)
    for name, value in loser.traits.items():
        held = winner.traits.get(name)
        if held is None or held.stamp < value.stamp:
            winner.traits[name] = value
    # An event can reach both sides only through duplicate delivery; count it once.
    overlap = [e for e in loser.applied if e in winner.applied]
    winner.event_count += loser.event_count - len(overlap)
    for channel, count in loser.channel_counts.items():
        winner.channel_counts[channel] = winner.channel_counts.get(channel, 0) + count
    for event_id in overlap:
        channel = loser.applied[event_id]
        winner.channel_counts[channel] -= 1
        if not winner.channel_counts[channel]:
            del winner.channel_counts[channel]
    if loser.first_seen is not None and (
        winner.first_seen is None or loser.first_seen < winner.first_seen
    ):
        winner.first_seen = loser.first_seen
    if loser.last_seen is not None and (
        winner.last_seen is None or loser.last_seen > winner.last_seen
    ):
        winner.last_seen = loser.last_seen
    if loser.last_channel_stamp is not None and (
        winner.last_channel_stamp is None or winner.last_channel_stamp < loser.last_channel_stamp
    ):
        winner.last_channel, winner.last_channel_stamp = (
            loser.last_channel,
            loser.last_channel_stamp,
        )
    for order_id, line in loser.orders.items():
        _keep_order(winner.orders, order_id, line)
    for purpose, state in loser.consent.items():
        _merge_consent(winner.consent, purpose, state)
    for event_id, channel in loser.applied.items():
        winner.applied.setdefault(event_id, channel)
    trim(winner.applied, window)
    for event_id in loser.passed_on:
        winner.passed_on.setdefault(event_id, None)
    trim(winner.passed_on, window)
    winner.absorbed.add(loser.profile_id)
    winner.absorbed.update(loser.absorbed)
    winner.merged_from = sorted({*winner.merged_from, loser.profile_id, *loser.merged_from})
    for other, reason in loser.declined.items():
        winner.declined.setdefault(other, reason)
    # A claim one side refused only because a quarantined identifier had joined it there
    # stands when the other side claims it itself (an event of its own joins it).
    own_claims = set(winner.claimed)
    for key in loser.claimed:
        if _quarantined_link(winner.refused.get(key)):
            del winner.refused[key]
    for key, identifier_type in loser.claimed.items():
        winner.claimed.setdefault(key, identifier_type)
    for key in [k for k in winner.claimed if k in winner.identifiers]:
        del winner.claimed[key]
    # What the winner refused and now holds through the loser is its own: a stale refusal
    # would send the events found through it round between the profile and the identifier,
    # which still points here (a re-link ban stays: an operator's word).
    stale = [
        key
        for key, refusal in winner.refused.items()
        if key in winner.identifiers and refusal.kind is not RefusalKind.BAN
    ]
    for key in stale:
        del winner.refused[key]
    for key, reason in loser.refused.items():
        if key not in winner.identifiers and not (key in own_claims and _quarantined_link(reason)):
            winner.refused.setdefault(key, reason)
    winner.created_at = min(winner.created_at, loser.created_at)


def _quarantined_link(refusal: Refusal | None) -> bool:
    return refusal is not None and refusal.kind is RefusalKind.QUARANTINED_LINK


def _keep_order(orders: dict[str, OrderLine], order_id: str, line: OrderLine) -> None:
    held = orders.get(order_id)
    if held is None or held.stamp < line.stamp:
        orders[order_id] = line


def _keep_consent(consent: dict[str, ConsentState], purpose: str, state: ConsentState) -> None:
    held = consent.get(purpose)
    if held is None or held.stamp < state.stamp:
        consent[purpose] = state


def _merge_consent(consent: dict[str, ConsentState], purpose: str, other: ConsentState) -> None:
    """Merged profiles: the newer change wins as for traits, and if the two disagreed the
    purpose is marked in conflict until a newer consent event (apply_event) settles it."""
    held = consent.get(purpose)
    if held is None:
        consent[purpose] = other
        return
    newer = other if held.stamp < other.stamp else held
    conflict = held.granted != other.granted or held.conflict or other.conflict
    consent[purpose] = ConsentState(newer.granted, newer.stamp, newer.source, conflict)


def revenue(profile: ProfileState) -> dict[str, float]:
    """Revenue per currency, summed in order-id order so float rounding is order-independent.

    Orders stored before amounts had to be finite (a NaN or an infinity) are left out: one such
    order would otherwise make the total NaN for good."""
    totals: dict[str, float] = {}
    for order_id in sorted(profile.orders):
        line = profile.orders[order_id]
        if math.isfinite(line.amount):
            totals[line.currency] = totals.get(line.currency, 0.0) + line.amount
    return totals
