"""Why the graph refused something: a link, a merge, an operation. The closed set lives here.

A `Refusal` is a kind and, for the kinds that name one, what it is about: the identifier type
over its limit (`limit`), the weak identifier type of the link (`weak_link`), the ban that keeps
two sides apart (`ban`). Its text, `kind` or `kind:of` (`limit:email`, `ban:P.Q`), is what the
IdentityChange `reason`, MergeDeclined and the stored states' `refused` / `declined` maps carry,
so records written before the type existed read as they were. Nothing else parses that text.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class RefusalKind(StrEnum):
    # a link or a merge
    LIMIT = "limit"
    WEAK_LINK = "weak_link"
    BAN = "ban"
    ERASED = "erased"
    QUARANTINED = "quarantined"  # the link identifier is quarantined (`of`: its type, in a split)
    QUARANTINED_LINK = "quarantined_link"  # claimed only through a quarantined identifier
    # an operation (split, unban, merge by hand)
    UNKNOWN_PROFILE = "unknown_profile"
    ALREADY_MERGED = "already_merged"
    SAME_PROFILE = "same_profile"
    NOT_HELD = "not_held"
    NAMES_NO_IDENTIFIER = "names_no_identifier"
    NAMES_EVERY_IDENTIFIER = "names_every_identifier"
    NOT_BANNED = "not_banned"
    NOT_QUARANTINED = "not_quarantined"  # a quarantine review of a value that is not


# Kinds whose `of` is an identifier type: the only refusals that are metric labels (bounded by
# the rules' types; a ban id is not bounded).
BY_IDENTIFIER_TYPE = (RefusalKind.LIMIT, RefusalKind.WEAK_LINK)


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    of: str = ""  # the identifier type (limit, weak_link) or the ban id (ban)

    def __str__(self) -> str:
        return f"{self.kind.value}:{self.of}" if self.of else self.kind.value

    @classmethod
    def parse(cls, text: str) -> Refusal:
        """The refusal of its text; ValueError if the kind is not one of ours."""
        kind, _, of = text.partition(":")
        return cls(RefusalKind(kind), of)


def limit(identifier_type: str) -> Refusal:
    return Refusal(RefusalKind.LIMIT, identifier_type)


def weak_link(identifier_type: str) -> Refusal:
    return Refusal(RefusalKind.WEAK_LINK, identifier_type)


def ban(ban_id: str) -> Refusal:
    return Refusal(RefusalKind.BAN, ban_id)


ERASED = Refusal(RefusalKind.ERASED)
UNKNOWN_PROFILE = Refusal(RefusalKind.UNKNOWN_PROFILE)
ALREADY_MERGED = Refusal(RefusalKind.ALREADY_MERGED)
SAME_PROFILE = Refusal(RefusalKind.SAME_PROFILE)
NOT_HELD = Refusal(RefusalKind.NOT_HELD)
NAMES_NO_IDENTIFIER = Refusal(RefusalKind.NAMES_NO_IDENTIFIER)
NAMES_EVERY_IDENTIFIER = Refusal(RefusalKind.NAMES_EVERY_IDENTIFIER)
NOT_BANNED = Refusal(RefusalKind.NOT_BANNED)
QUARANTINED = Refusal(RefusalKind.QUARANTINED)
QUARANTINED_LINK = Refusal(RefusalKind.QUARANTINED_LINK)
NOT_QUARANTINED = Refusal(RefusalKind.NOT_QUARANTINED)


def quarantined(identifier_type: str) -> Refusal:
    return Refusal(RefusalKind.QUARANTINED, identifier_type)
