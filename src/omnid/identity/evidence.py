"""Evidence: why a profile is one customer. Recording it as identifiers attach and profiles
merge, rendering it (`explain`), and the shortest evidence path between two identifiers.

Bounded: one evidence record per identifier held (limits bound how many), the latest
MERGE_EVIDENCE_WINDOW merges, one decline per profile pair and one refusal per identifier, and
the events of the history (`rules.history_window`).
"""

from __future__ import annotations

from collections import deque
from typing import Any

from omnid.identity.model import Event, Identifier
from omnid.identity.rules import IdentityRules
from omnid.identity.state import Ban, LinkRule, MergeEvidence, ProfileIdentifier, ProfileState

MERGE_EVIDENCE_WINDOW = 64
# The pseudo identifier type of a merge by hand (`via` of its MergeRequest): its value is the
# operator's name. No rule has this type, so no event ever links through it.
MANUAL_LINK = "manual"


def _held_partner(profile: ProfileState, event: Event, key: str) -> str | None:
    """An identifier of `event`, other than `key`, that the profile holds: what linked `key`.
    None when `key` is not in the event itself (a release or a re-asked claim names the event
    that set it off, not one the two identifiers appeared in)."""
    keys = [identifier.key for identifier in event.identifiers]
    if key not in keys:
        return None
    held = profile.identifiers
    for other in keys:
        if other != key and other in held:
            return other
    return None


def attached(
    profile: ProfileState,
    identifier: Identifier,
    added_at: int,
    event_id: str,
    rule: LinkRule,
    epoch: int,
) -> ProfileIdentifier:
    """The evidence of an identifier joining `profile` through event `event_id`."""
    event = profile.history.events.get(event_id)
    if event is None:
        return ProfileIdentifier(identifier.type, identifier.value, added_at, event_id, rule, epoch)
    return ProfileIdentifier(
        identifier.type,
        identifier.value,
        added_at,
        event_id,
        rule,
        epoch,
        event.channel,
        event.source,
        _held_partner(profile, event, identifier.key),
    )


def applied(profile: ProfileState, event: Event) -> None:
    """An identifier attached before its event was applied (the anchor) learns the channel."""
    identifiers = profile.identifiers
    for identifier in event.identifiers:
        held = identifiers.get(identifier.key)
        if held is not None and held.event_id == event.event_id and not held.channel:
            # The constructor, not dataclasses.replace (which introspects the fields): this
            # runs for every profile's first event.
            identifiers[identifier.key] = ProfileIdentifier(
                held.type,
                held.value,
                held.added_at,
                held.event_id,
                held.rule,
                held.epoch,
                event.channel,
                event.source,
                held.linked_by,
            )


def merged(
    winner: ProfileState,
    loser: ProfileState,
    winner_keys: list[str],
    via: Identifier,
    event_id: str,
    at: int,
) -> None:
    """Records the merge the winner just absorbed (call after the histories are joined)."""
    if via.type == MANUAL_LINK:
        loser_keys = sorted(loser.identifiers)
        record = MergeEvidence(
            loser.profile_id,
            loser_keys[0] if loser_keys else "",
            min(winner_keys) if winner_keys else None,
            event_id,
            at,
            operator=via.value,
        )
    else:
        event = winner.history.events.get(event_id)
        partner = _held_partner(winner, event, via.key) if event is not None else None
        record = MergeEvidence(loser.profile_id, via.key, partner, event_id, at)
    merges = winner.merges
    merges.extend(m for m in loser.merges if m not in merges)
    merges.append(record)
    del merges[:-MERGE_EVIDENCE_WINDOW]


# --- rendering ---------------------------------------------------------------------------------


def _identifier_record(key: str) -> dict[str, str]:
    identifier_type, _, value = key.partition(":")
    return {"type": identifier_type, "value": value}


def _event_record(event_id: str, channel: str, source: str, at: int) -> dict[str, Any]:
    return {"event_id": event_id, "channel": channel, "source": source, "at": at}


def explain(profile: ProfileState, rules: IdentityRules) -> dict[str, Any]:
    """The profile as a graph of evidence (the `/v1/profiles/{id}/explain` body)."""
    residue = profile.history.residue
    return {
        "profile_id": profile.profile_id,
        "status": profile.status.value,
        "identifiers": [
            {
                "type": held.type,
                "value": held.value,
                "rule": held.rule.value,
                "linked_by": _identifier_record(held.linked_by) if held.linked_by else None,
                "event": _event_record(held.event_id, held.channel, held.source, held.added_at),
            }
            for _, held in sorted(profile.identifiers.items())
        ],
        "merges": [
            {
                "other_profile_id": m.other,
                "via": _identifier_record(m.via) if m.via else None,
                "linked_by": _identifier_record(m.linked_by) if m.linked_by else None,
                "event_id": m.event_id,
                "at": m.at,
                "operator": m.operator,
            }
            for m in profile.merges
        ],
        "declined_merges": [
            {"other_profile_id": other, "reason": str(reason)}
            for other, reason in sorted(profile.declined.items())
        ],
        "refused_identifiers": [
            {"identifier": _identifier_record(key), "reason": str(reason)}
            for key, reason in sorted(profile.refused.items())
            if not key.startswith(f"{MANUAL_LINK}:")
        ],
        "bans": [_ban_record(ban, profile, rules) for _, ban in sorted(profile.bans.items())],
        "history": {
            "events": len(profile.history.events),
            "forgotten_events": residue.event_count if residue is not None else 0,
            "bound": rules.history_window,
        },
        "bounds": {"merges": MERGE_EVIDENCE_WINDOW, "history_events": rules.history_window},
    }


# --- evidence paths ----------------------------------------------------------------------------

# A hop between two identifiers: kind "event" (both appeared in the event) or "merge" (a merge
# by hand joined their profiles), with what proves it.
Hop = dict[str, Any]


def _ban_record(ban: Ban, profile: ProfileState, rules: IdentityRules) -> dict[str, Any]:
    """A ban as this profile sees it: of each side, the identifiers it holds itself (a ban
    keeps only digests, so another profile's identifiers are a count) and the side's size."""
    left, right = ban.sides_of(rules.recognition_key, sorted(profile.identifiers))
    return {
        "ban_id": ban.ban_id,
        "left_profile_id": ban.left_profile,
        "right_profile_id": ban.right_profile,
        "left": [_identifier_record(k) for k in left],
        "right": [_identifier_record(k) for k in right],
        "left_count": len(ban.left_digests),
        "right_count": len(ban.right_digests),
        "at": ban.at,
        "operator": ban.operator,
    }


def _links(profile: ProfileState) -> dict[str, list[tuple[str, Hop]]]:
    """Evidence edges between held identifiers, each with its proof."""
    held = profile.identifiers
    edges: dict[str, list[tuple[str, Hop]]] = {key: [] for key in held}

    def link(a: str, b: str, proof: Hop) -> None:
        if a != b and a in held and b in held:
            edges[a].append((b, proof))
            edges[b].append((a, proof))

    for key, item in sorted(held.items()):
        if item.linked_by is not None:
            proof = {
                "kind": "event",
                "event": _event_record(item.event_id, item.channel, item.source, item.added_at),
            }
            link(key, item.linked_by, proof)
    for merge in profile.merges:
        if merge.linked_by is None:
            continue
        if merge.operator is not None:
            proof = {
                "kind": "merge",
                "merge": {
                    "other_profile_id": merge.other,
                    "event_id": merge.event_id,
                    "at": merge.at,
                    "operator": merge.operator,
                },
            }
        else:
            event = profile.history.events.get(merge.event_id)
            proof = {
                "kind": "event",
                "event": _event_record(
                    merge.event_id,
                    event.channel if event else "",
                    event.source if event else "",
                    merge.at,
                ),
            }
        link(merge.via, merge.linked_by, proof)
    for event in profile.history.events.values():
        keys = [i.key for i in event.identifiers if i.key in held]
        proof = {
            "kind": "event",
            "event": _event_record(event.event_id, event.channel, event.source, event.event_time),
        }
        for a in keys:
            for b in keys:
                if a < b:
                    link(a, b, proof)
    return edges


def path(profile: ProfileState, start: str, end: str) -> list[Hop] | None:
    """The shortest chain of evidence from identifier `start` to `end` (keys), both held by the
    profile; None if either is not held or no evidence joins them (breadth-first search)."""
    if start not in profile.identifiers or end not in profile.identifiers:
        return None
    edges = _links(profile)
    came_from: dict[str, tuple[str, Hop] | None] = {start: None}
    queue = deque([start])
    while queue:
        key = queue.popleft()
        if key == end:
            break
        for neighbour, proof in edges[key]:
            if neighbour not in came_from:
                came_from[neighbour] = (key, proof)
                queue.append(neighbour)
    if end not in came_from:
        return None
    hops: list[Hop] = []
    key = end
    while (step := came_from[key]) is not None:
        previous, proof = step
        hops.append({"from": _identifier_record(previous), "to": _identifier_record(key), **proof})
        key = previous
    hops.reverse()
    return hops
