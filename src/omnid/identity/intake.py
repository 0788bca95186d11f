"""Intake: turn a decoded ChannelEvent into the first graph command; drop unusable identifiers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from omnid.errors import InvalidEvent, RejectionReason
from omnid.identity.commands import Resolve
from omnid.identity.model import Event, Identifier
from omnid.identity.normalisers import IdentifierRejection, RejectedIdentifier
from omnid.identity.rules import IdentityRules, NormalisationCache, normalise


@dataclass(frozen=True, slots=True)
class Rejection:
    """One identifier of an event that was not used: its type and why (never its value)."""

    type: str
    reason: IdentifierRejection
    detail: str


@dataclass(frozen=True, slots=True)
class Intake:
    commands: list[Resolve]
    rejected: list[Rejection]
    event: Event


def in_resolution_order(
    rules: IdentityRules, identifiers: Iterable[Identifier]
) -> list[Identifier]:
    """Highest priority first, then by key: the order an event's identifiers are probed in."""
    return sorted(identifiers, key=lambda i: (-rules.priority(i.type), i.key))


def usable_identifiers(
    rules: IdentityRules,
    raw: tuple[Identifier, ...],
    cache: NormalisationCache | None = None,
) -> tuple[tuple[Identifier, ...], list[Rejection]]:
    """Normalised, de-duplicated identifiers in resolution order (priority, then key); through
    `cache` (made from the same rules) when the caller keeps one."""
    kept: dict[str, Identifier] = {}
    rejected: list[Rejection] = []
    for item in raw:
        try:
            if cache is None:
                identifier = normalise(rules, item.type, item.value)
            else:
                identifier = cache.normalise(item.type, item.value)
        except RejectedIdentifier as error:
            rejected.append(Rejection(item.type, error.reason, error.detail))
            continue
        kept.setdefault(identifier.key, identifier)
    ordered = in_resolution_order(rules, kept.values())
    limit = rules.max_identifiers_per_event
    for extra in ordered[limit:]:
        rejected.append(
            Rejection(extra.type, IdentifierRejection.TOO_LONG, f"more than {limit} identifiers")
        )
    return tuple(ordered[:limit]), rejected


def commands_for_event(
    rules: IdentityRules, event: Event, cache: NormalisationCache | None = None
) -> Intake:
    """The Resolve that starts an event's journey; InvalidEvent if no identifier is usable."""
    identifiers, rejected = usable_identifiers(rules, event.identifiers, cache)
    if not identifiers:
        reasons = ", ".join(sorted({r.reason.value for r in rejected})) or "none given"
        raise InvalidEvent(RejectionReason.NO_IDENTIFIER, f"no usable identifier ({reasons})")
    if event.purchase is not None and not event.purchase.order_id.strip():
        raise InvalidEvent(RejectionReason.INVALID_FIELD, "purchase.order_id is empty")
    normalised = event.for_graph(identifiers)
    return Intake([Resolve(normalised)], rejected, normalised)
