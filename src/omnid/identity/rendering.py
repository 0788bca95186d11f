"""The records the core publishes, rendered as the Avro-shaped dicts of their public schemas
(omnid.ProfileUpdate, omnid.IdentityChange; times in epoch milliseconds). A module of its own:
commands (whose emissions render lazily), the protocol and the shell's lookup API use it, and
survivorship, which computes what is rendered, no longer sits between commands and state."""

from __future__ import annotations

import hashlib
from enum import StrEnum
from typing import Any

from omnid.identity.model import Identifier
from omnid.identity.refusals import Refusal
from omnid.identity.state import ProfileState
from omnid.identity.survivorship import revenue


def profile_update_record(profile: ProfileState) -> dict[str, Any]:
    """The profile as an omnid.ProfileUpdate value (timestamps as epoch-millisecond ints)."""
    first_seen = profile.first_seen if profile.first_seen is not None else profile.created_at
    last_seen = profile.last_seen if profile.last_seen is not None else profile.created_at
    return {
        "profile_id": profile.profile_id,
        "version": profile.version,
        "status": profile.status.value,
        "identifiers": [
            {
                "type": held.type,
                "value": held.value,
                "added_at": held.added_at,
                "event_id": held.event_id,
                "rule": held.rule.value,
            }
            for _, held in sorted(profile.identifiers.items())
        ],
        "traits": {
            name: {
                "value": trait.value,
                "event_time": trait.event_time,
                "source_priority": trait.source_priority,
                "event_id": trait.event_id,
            }
            for name, trait in profile.traits.items()
        },
        "computed": {
            "event_count": profile.event_count,
            "first_seen": first_seen,
            "last_seen": last_seen,
            "last_channel": profile.last_channel or "",
            "channel_counts": dict(profile.channel_counts),
            "order_count": len(profile.orders),
            "revenue": revenue(profile),
            "consent": {
                purpose: {
                    "granted": state.granted,
                    "at": state.stamp[0],
                    "source": state.source,
                    "conflict": state.conflict,
                }
                for purpose, state in profile.consent.items()
            },
        },
        "merged_from": list(profile.merged_from),
        "cause": {"kind": profile.cause_kind, "event_id": profile.cause_event_id},
        "updated_at": profile.updated_at,
    }


class ChangeKind(StrEnum):
    """What an omnid.IdentityChange says happened (its `kind`); each handler decides one."""

    MERGED = "merged"
    MERGE_REFUSED = "merge_refused"
    IDENTIFIER_ADDED = "identifier_added"
    IDENTIFIER_RELEASED = "identifier_released"
    QUARANTINED = "quarantined"
    QUARANTINE_RELEASED = "quarantine_released"
    QUARANTINE_BLOCKED = "quarantine_blocked"
    QUARANTINE_REFUSED = "quarantine_refused"
    SPLIT = "split"
    SPLIT_REFUSED = "split_refused"
    UNBANNED = "unbanned"
    UNBAN_REFUSED = "unban_refused"
    ERASED = "erased"


def identity_change_record(
    kind: ChangeKind,
    profile_id: str,
    other_profile_id: str | None,
    identifiers: list[Identifier],
    event_id: str | None,
    reason: Refusal | None,
    at: int,
    *,
    operator: str | None = None,
    counts: dict[str, int] | None = None,
    quarantine: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An omnid.IdentityChange; change_id is a hash of its content, so a replay repeats it."""
    ordered = sorted(identifiers)
    reason_text = None if reason is None else str(reason)
    fingerprint = "|".join(
        [
            kind.value,
            profile_id,
            other_profile_id or "",
            event_id or "",
            reason_text or "",
            operator or "",
        ]
        + [i.key for i in ordered]
    )
    return {
        "change_id": hashlib.sha256(fingerprint.encode()).hexdigest()[:32],
        "kind": kind.value,
        "profile_id": profile_id,
        "other_profile_id": other_profile_id,
        "identifiers": [{"type": i.type, "value": i.value} for i in ordered],
        "event_id": event_id,
        "reason": reason_text,
        "at": at,
        "counts": dict(sorted((counts or {}).items())),
        "operator": operator,
        "quarantine": quarantine,
    }
