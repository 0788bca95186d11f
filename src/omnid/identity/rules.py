"""The identity rules (streams/identity-rules.yaml): identifier types, normalisers, priorities,
per-profile limits, blocked values, hashing and source priorities, validated with pydantic.

A value handed to the core: finding, reading and parsing the file is the shell's
(`omnid.rules_file`). What is derived from the rules for fast lookups is computed once per
value and kept on it; what raw values normalise to is remembered by a `NormalisationCache`
that whoever normalises many values owns.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from typing import Any, Literal

import phonenumbers
from pydantic import BaseModel, ConfigDict, Field, field_validator

from omnid.errors import ConfigError
from omnid.identity.model import Identifier
from omnid.identity.normalisers import (
    IdentifierRejection,
    Normaliser,
    RejectedIdentifier,
    apply_normaliser,
    clean_text,
)

__all__ = [
    "IdentityRules",
    "NormalisationCache",
    "RejectedIdentifier",
    "Strength",
    "normalise",
]

_QUOTES = "\"'`"
_DAY_MS = 86_400_000


class Blocklist(BaseModel):
    """Values never linked on. Regexes are searched case-insensitively."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    exact: list[str] = Field(default_factory=list)
    case_insensitive: list[str] = Field(default_factory=list)
    regex: list[str] = Field(default_factory=list)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as error:
                raise ValueError(f"regex {pattern!r} does not compile: {error}") from None
        return patterns


class Strength(StrEnum):
    """Whether an identifier proves who someone is (strong) or only which device or browser
    they used (weak: a shared tablet or a family laptop carries many people)."""

    STRONG = "strong"
    WEAK = "weak"


class IdentifierTypeRule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    normaliser: Normaliser
    strength: Strength = Field(
        Strength.STRONG,
        description="weak: never links two profiles that each hold a strong identifier.",
    )
    priority: int = Field(description="Higher resolves first: the event's anchor identifier.")
    limit: int | Literal["unique"] | None = Field(
        None, description="Most identifiers of this type one profile may hold; unique = 1."
    )
    hashed: bool = Field(False, description="Store HMAC-SHA-256 of the normalised value.")
    max_length: int = Field(256, ge=1)
    blocked: Blocklist = Field(default_factory=Blocklist)
    quarantine_after: int | None = Field(
        None,
        ge=2,
        description="Distinct known profiles that may claim one value of this type within the "
        "quarantine window before the value is quarantined (stops linking); absent = never.",
    )
    quarantine_window_days: int = Field(
        30, ge=1, description="Claims count towards quarantine_after for this many days."
    )

    @field_validator("limit")
    @classmethod
    def _positive(cls, limit: int | str | None) -> int | str | None:
        if isinstance(limit, int) and limit < 1:
            raise ValueError("limit must be at least 1 (or 'unique', or absent for no limit)")
        return limit

    @property
    def max_per_profile(self) -> int | None:
        return 1 if self.limit == "unique" else self.limit


class _Matcher:
    """A blocklist compiled for fast lookups."""

    __slots__ = ("exact", "folded", "pattern")

    def __init__(self, lists: list[Blocklist]) -> None:
        self.exact = frozenset(v for b in lists for v in b.exact)
        self.folded = frozenset(v.casefold() for b in lists for v in b.case_insensitive)
        # One alternation instead of a loop over patterns: a single regex scan per value.
        patterns = [f"(?:{p})" for b in lists for p in b.regex]
        self.pattern = re.compile("|".join(patterns), re.IGNORECASE) if patterns else None

    def blocks(self, value: str) -> bool:
        return (
            value in self.exact
            or value.casefold() in self.folded
            or (self.pattern is not None and self.pattern.search(value) is not None)
        )


@dataclass(frozen=True, slots=True)
class _Lookups:
    """Lookups derived from the rules, read several times per event: a plain object kept in the
    model's `__dict__` (pydantic's private-attribute access is slow)."""

    matchers: dict[str, _Matcher]
    folding: frozenset[str]
    limits: dict[str, int]
    priorities: dict[str, int]
    weak: frozenset[str]
    channel_priority: dict[str, int]
    # type -> (quarantine_after, window in ms), for the types that have a quarantine threshold
    quarantine: dict[str, tuple[int, int]]


class IdentityRules(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1] = 1
    default_region: str = Field("GB", description="Region for phone numbers without +country.")
    email_folding_providers: list[str] = Field(
        default_factory=list, description="Email domains whose dots and +tags are folded."
    )
    channel_priority: dict[str, int] = Field(
        default_factory=dict, description="Source priority per channel; unknown channels get 0."
    )
    applied_event_window: int = Field(10_000, ge=1, description="Event ids a profile remembers.")
    recent_event_window: int = Field(
        1_000, ge=1, description="Event ids an anchor identifier remembers (duplicate delivery)."
    )
    history_window: int = Field(
        500,
        ge=1,
        description="Events a profile keeps in its history (what a split can reassign).",
    )
    max_identifiers_per_event: int = Field(32, ge=1)
    blocklist: Blocklist = Field(default_factory=Blocklist)
    identifier_types: dict[str, IdentifierTypeRule]
    hash_secret: str | None = Field(None, exclude=True, repr=False)
    # Keys the digests of what is kept only to recognise identifiers again (re-link bans): the
    # shell hands in its suppression secret; the core never reads it from anywhere.
    recognition_secret: str = Field("", exclude=True, repr=False)

    @field_validator("default_region")
    @classmethod
    def _known_region(cls, region: str) -> str:
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"{region!r} is not a region phonenumbers knows (e.g. GB, US, DE)")
        return region

    @field_validator("identifier_types")
    @classmethod
    def _type_names(cls, types: dict[str, IdentifierTypeRule]) -> dict[str, IdentifierTypeRule]:
        if not types:
            raise ValueError("at least one identifier type is required")
        for name in types:
            if not re.fullmatch(r"[a-z][a-z0-9_]*", name):
                raise ValueError(f"identifier type {name!r} must match [a-z][a-z0-9_]*")
        # An event resolves through its identifiers in priority order; the protocol relies on
        # every strong identifier of an event being probed before any weak one.
        weak = [(r.priority, n) for n, r in types.items() if r.strength is Strength.WEAK]
        strong = [(r.priority, n) for n, r in types.items() if r.strength is Strength.STRONG]
        if weak and strong and max(weak)[0] >= min(strong)[0]:
            raise ValueError(
                f"weak type {max(weak)[1]!r} (priority {max(weak)[0]}) must have a lower priority "
                f"than every strong type, but {min(strong)[1]!r} has {min(strong)[0]}"
            )
        return types

    def model_post_init(self, context: Any, /) -> None:
        hashed = [name for name, rule in self.identifier_types.items() if rule.hashed]
        if hashed and not self.hash_secret:
            raise ConfigError(
                f"identifier types {', '.join(hashed)} are hashed but no hash secret is set "
                "(OMNID_IDENTIFIER_HASH_SECRET)"
            )

    @cached_property
    def _lookups(self) -> _Lookups:
        return _Lookups(
            matchers={
                name: _Matcher([self.blocklist, rule.blocked])
                for name, rule in self.identifier_types.items()
            },
            folding=frozenset(d.lower() for d in self.email_folding_providers),
            limits={
                name: limit
                for name, rule in self.identifier_types.items()
                if (limit := rule.max_per_profile) is not None
            },
            priorities={name: rule.priority for name, rule in self.identifier_types.items()},
            weak=frozenset(
                name
                for name, rule in self.identifier_types.items()
                if rule.strength is Strength.WEAK
            ),
            channel_priority=dict(self.channel_priority),
            quarantine={
                name: (rule.quarantine_after, rule.quarantine_window_days * _DAY_MS)
                for name, rule in self.identifier_types.items()
                if rule.quarantine_after is not None
            },
        )

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> IdentityRules:
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("_lookups", None)  # derived from the fields: derived again
        return copied

    def limit(self, identifier_type: str) -> int | None:
        return self._lookups.limits.get(identifier_type)

    @property
    def limits(self) -> dict[str, int]:
        return dict(self._lookups.limits)

    def priority(self, identifier_type: str) -> int:
        return self._lookups.priorities[identifier_type]

    def source_priority(self, channel: str) -> int:
        return self._lookups.channel_priority.get(channel, 0)

    def is_weak(self, identifier_type: str) -> bool:
        return identifier_type in self._lookups.weak

    @property
    def weak_types(self) -> frozenset[str]:
        return self._lookups.weak

    def without_limits(self) -> IdentityRules:
        """The same rules with no per-profile limits, no weak types and no quarantine: nothing
        stops a link, so profiles are union-find components (invariant 1)."""
        types = {
            name: rule.model_copy(
                update={"limit": None, "strength": Strength.STRONG, "quarantine_after": None}
            )
            for name, rule in self.identifier_types.items()
        }
        return self._with_types(types)

    def quarantine(self, identifier_type: str) -> tuple[int, int] | None:
        """(quarantine_after, window in ms) of a type, None when its values are never
        quarantined."""
        return self._lookups.quarantine.get(identifier_type)

    def without_quarantine(self) -> IdentityRules:
        """The same rules with no quarantine thresholds (the benchmark's 'without' run)."""
        types = {
            name: rule.model_copy(update={"quarantine_after": None})
            for name, rule in self.identifier_types.items()
        }
        return self._with_types(types)

    def _with_types(self, types: dict[str, IdentifierTypeRule]) -> IdentityRules:
        return IdentityRules.model_validate(
            {
                **self.model_dump(),
                "identifier_types": types,
                "hash_secret": self.hash_secret,
                "recognition_secret": self.recognition_secret,
            }
        )

    @property
    def recognition_key(self) -> bytes:
        return self.recognition_secret.encode()


def _unquoted(value: str) -> str:
    while len(value) >= 2 and value[0] == value[-1] and value[0] in _QUOTES:
        value = value[1:-1].strip()
    return value


# Entries a NormalisationCache keeps by default: about 190 bytes an entry (measured with
# tracemalloc on the bench workload), so at most ~10 MiB.
NORMALISED_CACHE_ENTRIES = 50_000


class NormalisationCache:
    """What raw values normalise to under one rules value, rejections included: customers send
    the same values again and again, and a phone number costs ~50 us to parse. Bounded: past
    `entries` the oldest entry goes first."""

    __slots__ = ("_known", "entries", "rules")

    def __init__(self, rules: IdentityRules, entries: int = NORMALISED_CACHE_ENTRIES) -> None:
        self.rules = rules
        self.entries = entries
        # OrderedDict: popitem evicts in O(1); a plain dict's `del d[next(iter(d))]` walks
        # every slot deleted before (90 us per eviction at 50,000 entries, against 1.4 us).
        self._known: OrderedDict[tuple[str, str], Identifier | RejectedIdentifier] = OrderedDict()

    def normalise(self, identifier_type: str, raw: str) -> Identifier:
        """`normalise(self.rules, identifier_type, raw)`, remembered."""
        known = self._known.get((identifier_type, raw))
        if known is None:
            try:
                known = normalise(self.rules, identifier_type, raw)
            except RejectedIdentifier as rejection:
                # A fresh copy, never raised: the caught one's traceback (and its context's)
                # holds every frame of the stack it was raised in, and with them the worker's
                # whole batch of consumed records, as long as the entry stays here.
                known = RejectedIdentifier(rejection.reason, rejection.detail)
            if len(self._known) >= self.entries:
                self._known.popitem(last=False)
            self._known[(identifier_type, raw)] = known
        if isinstance(known, RejectedIdentifier):
            raise RejectedIdentifier(known.reason, known.detail)
        return known


def normalise(rules: IdentityRules, identifier_type: str, raw: str) -> Identifier:
    """Canonical identifier for a raw value, or RejectedIdentifier saying why not."""
    rule = rules.identifier_types.get(identifier_type)
    if rule is None:
        raise RejectedIdentifier(IdentifierRejection.UNKNOWN_TYPE, "identifier type not in rules")
    if len(raw) > rule.max_length:
        raise RejectedIdentifier(IdentifierRejection.TOO_LONG, f"longer than {rule.max_length}")
    stripped = clean_text(raw, rule.normaliser)
    if not stripped:
        raise RejectedIdentifier(IdentifierRejection.EMPTY, "empty value")
    lookups = rules._lookups
    matcher = lookups.matchers[identifier_type]
    unquoted = _unquoted(stripped)
    if (
        not unquoted
        or matcher.blocks(unquoted)
        or (unquoted != stripped and matcher.blocks(stripped))
    ):
        raise RejectedIdentifier(IdentifierRejection.BLOCKED, "placeholder or junk value")
    value = apply_normaliser(rule.normaliser, unquoted, rules.default_region, lookups.folding)
    if value != unquoted and matcher.blocks(value):
        raise RejectedIdentifier(IdentifierRejection.BLOCKED, "placeholder or junk value")
    if len(value) > rule.max_length:  # NFKC can lengthen a value ("ﷺ" is 18 characters)
        raise RejectedIdentifier(IdentifierRejection.TOO_LONG, f"longer than {rule.max_length}")
    if rule.hashed:
        secret = (rules.hash_secret or "").encode()
        value = hmac.new(secret, value.encode(), hashlib.sha256).hexdigest()
    return Identifier(identifier_type, value)
