"""A profile's bounded event history: recording events, joining histories on a merge, and
recomputing traits and counters from a history (what a split needs for each side)."""

from __future__ import annotations

from collections.abc import Iterable

from omnid.identity.model import Event
from omnid.identity.rules import IdentityRules
from omnid.identity.state import EventHistory, ProfileState
from omnid.identity.survivorship import absorb, apply_event

# What survivorship reads of an event (everything but `properties`, which it never uses).
_AGGREGATES = (
    "traits",
    "event_count",
    "first_seen",
    "last_seen",
    "last_channel",
    "last_channel_stamp",
    "channel_counts",
    "orders",
    "consent",
    "applied",
)


def kept_event(event: Event) -> Event:
    """The event as the history keeps it: without `properties` (intake leaves them behind;
    an Apply written by an older build may still carry them)."""
    return event if not event.properties else event.for_graph(event.identifiers)


def record_event(rules: IdentityRules, profile: ProfileState, event: Event) -> None:
    """Remember an event the profile just applied; the oldest beyond the bound is forgotten
    into the residue aggregate."""
    history = profile.history
    history.events[event.event_id] = kept_event(event)
    _trim(rules, profile.profile_id, history)


def join_history(rules: IdentityRules, winner: ProfileState, loser: ProfileState) -> None:
    """The loser's history moves into the winner with the rest of its state."""
    history = winner.history
    for event_id, event in loser.history.events.items():
        history.events.setdefault(event_id, event)
    if loser.history.residue is not None:
        if history.residue is None:
            history.residue = ProfileState(winner.profile_id, created_at=0)
        absorb(history.residue, loser.history.residue, rules.applied_event_window)
    _trim(rules, winner.profile_id, history)


def _trim(rules: IdentityRules, profile_id: str, history: EventHistory) -> None:
    events = history.events
    while len(events) > rules.history_window:
        oldest = events.pop(next(iter(events)))
        if history.residue is None:
            history.residue = ProfileState(profile_id, created_at=0)
        apply_event(
            history.residue,
            oldest,
            rules.source_priority(oldest.channel),
            rules.applied_event_window,
        )


def recompute(rules: IdentityRules, profile: ProfileState, events: Iterable[Event]) -> None:
    """Sets the profile's traits and counters to what survivorship gives over its residue (the
    forgotten events) and `events`, replacing its history with them."""
    fresh = ProfileState(profile.profile_id, created_at=profile.created_at)
    residue = profile.history.residue
    if residue is not None:
        absorb(fresh, residue, rules.applied_event_window)
    kept: dict[str, Event] = {}
    for event in events:
        kept[event.event_id] = event
        apply_event(fresh, event, rules.source_priority(event.channel), rules.applied_event_window)
    for name in _AGGREGATES:
        setattr(profile, name, getattr(fresh, name))
    profile.history = EventHistory(kept, residue)


def forgotten_count(profile: ProfileState) -> int:
    residue = profile.history.residue
    return residue.event_count if residue is not None else 0
