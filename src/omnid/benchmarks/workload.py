"""A seeded, reproducible omnichannel retail workload: ChannelEvent dicts plus their ground truth.

Values are synthetic (mail domains under the reserved `.example` TLD, generated ids, generated
UK mobile numbers); no real person's data. `example.com` itself is blocked as test data by the
default identity rules, hence `inbox.example`.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Any

# 2024-03-01T00:00:00Z: a fixed start so the same seed gives byte-identical events.
DEFAULT_START_MS = 1_709_251_200_000

# Junk that real channel systems send: placeholders, test accounts, zeroed device ids. Each pair
# is (identifier type, raw value). The identity rules must block or reject every one of them;
# if one slips through, the benchmark shows it as over-merges.
JUNK_IDENTIFIERS: tuple[tuple[str, str], ...] = (
    ("email", "test@test.com"),
    ("email", "null"),
    ("email", "undefined"),
    ("email", "noreply@example.com"),
    ("phone", "0000000000"),
    ("phone", "+440000000000"),
    ("anonymous_id", "undefined"),
    ("anonymous_id", "null"),
    ("anonymous_id", "00000000-0000-0000-0000-000000000000"),
    ("device_id", "00000000-0000-0000-0000-000000000000"),
    ("device_id", "unknown"),
    ("user_id", "guest"),
    ("user_id", "0"),
    ("loyalty_id", "0000000000"),
)

FIRST_NAMES = (
    "ada", "ben", "cara", "dev", "eli", "fay", "gus", "hana", "ivo", "jun", "kit", "lea",
    "max", "nia", "oli", "pia", "quin", "rae", "sol", "tam", "uma", "vic", "wyn", "zoe",
)  # fmt: skip
LAST_NAMES = (
    "archer", "baker", "carter", "dyer", "ellis", "fisher", "glover", "hunter", "irving",
    "joiner", "keller", "lister", "mason", "naylor", "osler", "parker", "quarry", "roper",
    "slater", "turner", "usher", "vickers", "walker", "yeoman",
)  # fmt: skip
CITIES = ("leeds", "york", "bath", "derby", "hull", "ely", "wells", "truro", "perth", "bangor")
TIERS = ("bronze", "silver", "gold")
WEB_PAGES = ("/", "/new-in", "/women/coats", "/men/shoes", "/home/lighting", "/sale", "/basket")
APP_SCREENS = ("home", "search", "product", "basket", "orders", "stores")


class IdentifierRole(StrEnum):
    """What an identifier in a generated event really is, independent of any identity rules."""

    CUSTOMER = "customer"  # belongs to exactly one customer
    SHARED = "shared"  # a store tablet used by many customers: links nobody
    GENERIC = "generic"  # a valid-looking value typed in for many customers: links nobody
    JUNK = "junk"  # a placeholder or test value: must be blocked or rejected


class GenericKind(StrEnum):
    """The generic values of the workload. They pass every normaliser and blocklist (they look
    like anybody's phone, email or card), so only quarantine can tell them from a customer's."""

    STORE_PHONE = "store_phone"  # the store's own number, typed at the till for "no phone"
    TILL_EMAIL = "till_email"  # the chain's placeholder address on walk-in receipts
    FAMILY_CARD = "family_card"  # one loyalty card shared by a household


# The chain's till placeholder, `kasse@filiale.de` style, under the reserved `.example` TLD.
TILL_EMAIL = "kasse@filiale.example"


@dataclass(frozen=True)
class WorkloadSpec:
    """Size, seed and noise rates of a workload; the same spec always yields the same events."""

    customers: int = 1_000
    events: int = 10_000
    seed: int = 7
    start_ms: int = DEFAULT_START_MS
    mean_gap_ms: float = 50.0  # simulated time between consecutive events
    stores: int = 12  # each store has one shared tablet
    login_rate: float = 0.7  # web/app sessions that log in (the rest stay anonymous)
    junk_rate: float = 0.03  # events carrying an extra junk identifier
    shared_tablet_rate: float = 0.02  # journeys that happen on a store tablet
    duplicate_rate: float = 0.02  # events delivered twice (same event_id, same bytes)
    out_of_order_rate: float = 0.05  # events held back behind later ones
    late_rate: float = 0.01  # events received hours after they occurred (offline tills)
    no_identifier_rate: float = 0.01  # cash purchases with no identifier at all
    # Store purchases where the till fills a field the customer left empty with a generic
    # value: the store's phone or the till placeholder email.
    till_placeholder_rate: float = 0.12
    family_cards: int = 4  # households of 2-5 customers sharing one loyalty card
    family_card_rate: float = 0.6  # a household member's loyalty scans that use the shared card
    concurrent_journeys: int = 64  # journeys interleaved at any moment

    def __post_init__(self) -> None:
        if self.customers < 1 or self.events < 0:
            raise ValueError("a workload needs at least one customer and a non-negative size")
        if self.stores > 1_000:
            raise ValueError("store phones come from a 1,000-number range: at most 1,000 stores")

    def without_shared_values(self) -> WorkloadSpec:
        """This workload without store tablets and generic values: what they link depends on
        arrival order by design (limits, quarantine), so only without them is one in-memory
        run an exact oracle for the pipeline."""
        return replace(self, shared_tablet_rate=0.0, till_placeholder_rate=0.0, family_cards=0)


@dataclass(frozen=True)
class Customer:
    """One synthetic customer and every identifier it owns, apart from per-session anonymous ids."""

    customer_id: str
    first_name: str
    last_name: str
    city: str
    tier: str
    user_id: str
    emails: tuple[str, ...]
    phones: tuple[str, ...]  # E.164
    devices: tuple[str, ...]
    loyalty_id: str
    crm_id: str


@dataclass(frozen=True)
class LabelledEvent:
    """A ChannelEvent record and, per identifier in it, the canonical key and what it really is."""

    record: dict[str, Any]
    keys: tuple[str, ...]  # "<type>:<normalised value>", aligned with record["identifiers"]
    owners: tuple[str | None, ...]  # customer id, or None for shared, generic or junk ones
    roles: tuple[IdentifierRole, ...]
    customer_id: str | None  # who caused the event (None: an anonymous cash purchase)
    is_duplicate: bool = False

    @property
    def customer_keys(self) -> tuple[str, ...]:
        """Keys of this event that belong to a customer: the ones a correct resolver links."""
        return tuple(
            k
            for k, role in zip(self.keys, self.roles, strict=True)
            if role is IdentifierRole.CUSTOMER
        )


@dataclass
class GroundTruth:
    """Which customer owns each identifier key seen in the workload, and which keys link nobody.

    `generic_claimants` names, per generic value, the customers it was typed in for: separate
    people that the value must not join (the expected partition keeps them apart)."""

    owner_by_key: dict[str, str] = field(default_factory=dict)
    shared_keys: set[str] = field(default_factory=set)
    junk_keys: set[str] = field(default_factory=set)
    generic_kinds: dict[str, GenericKind] = field(default_factory=dict)
    generic_claimants: dict[str, set[str]] = field(default_factory=dict)

    def add(self, event: LabelledEvent) -> None:
        for key, owner, role in zip(event.keys, event.owners, event.roles, strict=True):
            if role is IdentifierRole.CUSTOMER and owner is not None:
                self.owner_by_key[key] = owner
            elif role is IdentifierRole.SHARED:
                self.shared_keys.add(key)
            elif role is IdentifierRole.GENERIC:
                self.generic_kinds[key] = generic_kind_of(key)
                claimants = self.generic_claimants.setdefault(key, set())
                if event.customer_id is not None and event.customer_keys:
                    claimants.add(event.customer_id)
            else:
                self.junk_keys.add(key)


def customer_at(spec: WorkloadSpec, index: int) -> Customer:
    """The customer at `index`, derived from the seed alone: nothing is kept in memory."""
    return _customer(spec.seed, index)


@lru_cache(maxsize=65_536)
def _customer(seed: int, index: int) -> Customer:
    rng = random.Random(f"omnid-customer:{seed}:{index}")
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    # The index inside every value keeps identifiers unique across customers.
    emails = [f"{first}.{last}.{index}@inbox.example"]
    if rng.random() < 0.35:
        emails.append(f"{first[0]}{last}{index}@post.example")
    phones = [_phone(index * 2)]
    if rng.random() < 0.25:
        phones.append(_phone(index * 2 + 1))
    devices = tuple(_uuid(rng) for _ in range(rng.choice((1, 1, 2, 2, 3))))
    return Customer(
        customer_id=f"cust-{index:07d}",
        first_name=first,
        last_name=last,
        city=rng.choice(CITIES),
        tier=rng.choice(TIERS),
        user_id=f"u{index:08d}",
        emails=tuple(emails),
        phones=tuple(phones),
        devices=devices,
        loyalty_id=f"6{seed % 1000:03d}{index:09d}",
        crm_id=f"crm-{index:08d}",
    )


def _phone(serial: int) -> str:
    # UK mobile numbers from +447700000000 upward: valid to libphonenumber, generated, nobody's.
    return f"+44{7_700_000_000 + serial}"


def _uuid(rng: random.Random) -> str:
    # A version-4 layout formatted by hand: uuid.UUID costs more than the rest of an event.
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) & 3]}{h[17:20]}-{h[20:]}"


def tablet_device_id(spec: WorkloadSpec, store: int) -> str:
    """The device id of the shared tablet in `store`: seen with many customers, owned by none."""
    return _uuid(random.Random(f"omnid-tablet:{spec.seed}:{store}"))


def store_phone(store: int) -> str:
    """The phone number of `store` (E.164): Ofcom's drama range 0113 496 0000-0999, valid to
    libphonenumber and nobody's; apart from the customers' mobile numbers."""
    return f"+44113496{store:04d}"


def family_card(spec: WorkloadSpec, family: int) -> str:
    """The loyalty card household `family` shares; customers' own cards start with a 6."""
    return f"F{spec.seed % 1000:03d}{family:06d}"


def generic_kind_of(key: str) -> GenericKind:
    """Which generic value a key of the workload is, from the shapes above."""
    if key.startswith("phone:"):
        return GenericKind.STORE_PHONE
    if key.startswith("email:"):
        return GenericKind.TILL_EMAIL
    return GenericKind.FAMILY_CARD


@lru_cache(maxsize=64)
def families(spec: WorkloadSpec) -> tuple[tuple[int, ...], ...]:
    """The households sharing a loyalty card: disjoint tuples of customer indices."""
    rng = random.Random(f"omnid-families:{spec.seed}:{spec.customers}")
    sizes = [rng.choice((2, 3, 3, 4, 5)) for _ in range(spec.family_cards)]
    while sizes and sum(sizes) > spec.customers:
        sizes.pop()
    members = rng.sample(range(spec.customers), sum(sizes))
    households, start = [], 0
    for size in sizes:
        households.append(tuple(members[start : start + size]))
        start += size
    return tuple(households)


# --- journeys: short per-customer sequences whose order matters (anonymous before login) ---

_Identifier = tuple[str, str, str, IdentifierRole]  # (type, raw value, canonical key, role)


@dataclass
class _Draft:
    channel: str
    source: str
    event_type: str
    identifiers: list[_Identifier]
    traits: dict[str, Any] = field(default_factory=dict)
    properties: dict[str, Any] = field(default_factory=dict)
    purchase: dict[str, Any] | None = None
    consent: list[dict[str, Any]] | None = None


class _Journeys:
    """Builds journeys (lists of drafts) for random customers with the stream's own rng."""

    def __init__(self, spec: WorkloadSpec, rng: random.Random) -> None:
        self.spec = spec
        self.rng = rng
        self.family_card_of = {
            f"cust-{index:07d}": family_card(spec, family)
            for family, members in enumerate(families(spec))
            for index in members
        }
        kinds = {
            self.web_session: 30,
            self.app_session: 18,
            self.store_purchase: 20,
            self.email_engagement: 15,
            self.crm_update: 8,
            self.call_centre: 4,
            self.loyalty: 3,
            self.consent: 2,
        }
        self.kinds = list(kinds)
        self.weights = list(kinds.values())

    def next(self) -> tuple[Customer, list[_Draft]]:
        customer = customer_at(self.spec, self.rng.randrange(self.spec.customers))
        if self.rng.random() < self.spec.shared_tablet_rate:
            return customer, self.tablet_session(customer)
        kind = self.rng.choices(self.kinds, self.weights)[0]
        return customer, kind(customer)

    # identifiers -----------------------------------------------------------------------
    def customer_id(self, id_type: str, value: str) -> _Identifier:
        raw = value
        if id_type == "email":
            raw = self.vary_email(value)
        elif id_type == "phone" and self.rng.random() < 0.3:
            raw = f"{value[:3]} {value[3:7]} {value[7:]}"  # "+44 7700 123456", same number
        return (id_type, raw, f"{id_type}:{value}", IdentifierRole.CUSTOMER)

    def vary_email(self, email: str) -> str:
        roll = self.rng.random()
        if roll < 0.1:
            return email.upper()
        if roll < 0.2:
            return f" {email.capitalize()} "
        return email

    def generic(self, id_type: str, raw: str, key: str) -> _Identifier:
        return (id_type, raw, f"{id_type}:{key}", IdentifierRole.GENERIC)

    def loyalty_card(self, c: Customer) -> _Identifier:
        """The card scanned for `c`: a household's shared card, often, for its members."""
        shared = self.family_card_of.get(c.customer_id)
        if shared is not None and self.rng.random() < self.spec.family_card_rate:
            return self.generic("loyalty_id", shared.lower(), shared)
        return self.customer_id("loyalty_id", c.loyalty_id)

    def anonymous(self) -> _Identifier:
        value = _uuid(self.rng)
        return ("anonymous_id", value, f"anonymous_id:{value}", IdentifierRole.CUSTOMER)

    # journeys --------------------------------------------------------------------------
    def web_session(self, c: Customer) -> list[_Draft]:
        anon = self.anonymous()
        drafts = [
            _Draft(
                "web", "webshop", "page", [anon], properties={"path": self.rng.choice(WEB_PAGES)}
            )
            for _ in range(self.rng.randint(1, 4))
        ]
        if self.rng.random() >= self.spec.login_rate:
            return drafts
        user = self.customer_id("user_id", c.user_id)
        email = self.customer_id("email", self.rng.choice(c.emails))
        drafts.append(
            _Draft(
                "web",
                "webshop",
                "identify",
                [anon, user, email],
                traits={"first_name": c.first_name, "last_name": c.last_name},
            )
        )
        for _ in range(self.rng.randint(0, 2)):
            drafts.append(
                _Draft(
                    "web", "webshop", "track", [anon, user], properties={"event": "product_viewed"}
                )
            )
        if self.rng.random() < 0.3:
            drafts.append(
                _Draft("web", "webshop", "purchase", [anon, user, email], purchase=self.order())
            )
        return drafts

    def app_session(self, c: Customer) -> list[_Draft]:
        device = self.customer_id("device_id", self.rng.choice(c.devices))
        anon = self.anonymous()
        source = self.rng.choice(("ios-app", "android-app"))
        drafts = [
            _Draft("app", source, "screen", [device, anon], properties={"screen": s})
            for s in self.rng.sample(APP_SCREENS, self.rng.randint(1, 3))
        ]
        if self.rng.random() >= self.spec.login_rate:
            return drafts
        user = self.customer_id("user_id", c.user_id)
        drafts.append(_Draft("app", source, "identify", [device, anon, user]))
        if self.rng.random() < 0.25:
            drafts.append(_Draft("app", source, "purchase", [device, user], purchase=self.order()))
        return drafts

    def store_purchase(self, c: Customer) -> list[_Draft]:
        store = self.rng.randrange(self.spec.stores)
        source = f"store-{store:03d}-till-{self.rng.randint(1, 6)}"
        roll = self.rng.random()
        identifiers: list[_Identifier]
        if roll < self.spec.no_identifier_rate:
            identifiers = []  # paid cash, no card: the pipeline must dead-letter it, not crash
        elif roll < self.spec.no_identifier_rate + self.spec.till_placeholder_rate:
            identifiers = self.walk_in_receipt(c, store)
        elif roll < 0.6:
            identifiers = [self.loyalty_card(c)]
        elif roll < 0.85:
            identifiers = [self.customer_id("phone", self.rng.choice(c.phones))]
        else:
            identifiers = [
                self.loyalty_card(c),
                self.customer_id("phone", self.rng.choice(c.phones)),
            ]
        return [_Draft("pos", source, "purchase", identifiers, purchase=self.order(), traits={})]

    def walk_in_receipt(self, c: Customer, store: int) -> list[_Identifier]:
        """The till wants a phone and an email; what the customer does not give, the cashier
        fills in with the store's number or the placeholder address."""
        phone = store_phone(store)
        typed = phone if self.rng.random() < 0.5 else f"0113 496 {store:04d}"
        placeholder_phone = self.generic("phone", typed, phone)
        roll = self.rng.random()
        if roll < 0.1:
            return [placeholder_phone]  # gave nothing at all
        if roll < 0.4:
            return [self.loyalty_card(c), placeholder_phone]
        if roll < 0.7:
            return [self.customer_id("email", self.rng.choice(c.emails)), placeholder_phone]
        till_email = self.generic("email", self.vary_email(TILL_EMAIL), TILL_EMAIL)
        return [self.customer_id("phone", self.rng.choice(c.phones)), till_email]

    def tablet_session(self, c: Customer) -> list[_Draft]:
        store = self.rng.randrange(self.spec.stores)
        tablet_value = tablet_device_id(self.spec, store)
        tablet = ("device_id", tablet_value, f"device_id:{tablet_value}", IdentifierRole.SHARED)
        source = f"store-{store:03d}-kiosk"
        login = (
            self.loyalty_card(c)
            if self.rng.random() < 0.6
            else self.customer_id("email", self.rng.choice(c.emails))
        )
        return [
            _Draft("app", source, "screen", [tablet], properties={"screen": "stores"}),
            _Draft("app", source, "identify", [tablet, login]),
        ]

    def email_engagement(self, c: Customer) -> list[_Draft]:
        email = self.customer_id("email", self.rng.choice(c.emails))
        campaign = f"cmp-{self.rng.randint(1, 40):03d}"
        drafts = [_Draft("email", "esp", "email_open", [email], properties={"campaign": campaign})]
        if self.rng.random() < 0.4:
            anon = self.anonymous()
            drafts.append(
                _Draft(
                    "email", "esp", "email_click", [email, anon], properties={"campaign": campaign}
                )
            )
            drafts.append(_Draft("web", "webshop", "page", [anon], properties={"path": "/sale"}))
        return drafts

    def crm_update(self, c: Customer) -> list[_Draft]:
        identifiers = [self.customer_id("crm_id", c.crm_id)]
        identifiers += [self.customer_id("email", e) for e in c.emails if self.rng.random() < 0.8]
        identifiers += [self.customer_id("phone", p) for p in c.phones if self.rng.random() < 0.6]
        if self.rng.random() < 0.5:
            identifiers.append(self.customer_id("loyalty_id", c.loyalty_id))
        traits = {"first_name": c.first_name, "last_name": c.last_name, "city": c.city}
        return [_Draft("crm", "crm", "crm_update", identifiers, traits=traits)]

    def call_centre(self, c: Customer) -> list[_Draft]:
        identifiers = [self.customer_id("phone", self.rng.choice(c.phones))]
        if self.rng.random() < 0.5:
            identifiers.append(self.customer_id("crm_id", c.crm_id))
        return [_Draft("call_centre", "contact-centre", "call", identifiers)]

    def loyalty(self, c: Customer) -> list[_Draft]:
        identifiers = [self.loyalty_card(c), self.customer_id("email", c.emails[0])]
        return [
            _Draft(
                "loyalty",
                "loyalty",
                "points_earned",
                identifiers,
                traits={"loyalty_tier": c.tier},
                properties={"points": self.rng.randint(10, 500)},
            )
        ]

    def consent(self, c: Customer) -> list[_Draft]:
        change = {"purpose": "marketing_email", "granted": self.rng.random() < 0.7}
        return [
            _Draft(
                "web",
                "webshop",
                "consent",
                [self.customer_id("user_id", c.user_id)],
                consent=[change],
            )
        ]

    def order(self) -> dict[str, Any]:
        return {
            "order_id": f"ord-{self.rng.getrandbits(48):012x}",
            "amount": round(self.rng.uniform(4.0, 250.0), 2),
            "currency": "GBP" if self.rng.random() < 0.9 else "EUR",
        }

    def junk(self) -> _Identifier:
        id_type, value = self.rng.choice(JUNK_IDENTIFIERS)
        return (id_type, value, f"{id_type}:{value.strip().lower()}", IdentifierRole.JUNK)


def labelled_events(spec: WorkloadSpec) -> Iterator[LabelledEvent]:
    """Exactly `spec.events` events, lazily, with noise, each labelled with its true owners.

    Memory stays bounded by the journeys in flight and the reorder buffer, not by the size.
    """
    rng = random.Random(f"omnid-workload:{spec.seed}")
    journeys = _Journeys(spec, rng)
    in_flight: list[tuple[Customer, list[_Draft]]] = []
    # (release position, sequence, event): held-back and duplicate events wait here.
    pending: list[tuple[int, int, LabelledEvent]] = []
    clock = float(spec.start_ms)
    position = 0
    sequence = 0
    emitted = 0
    while emitted < spec.events:
        while len(in_flight) < spec.concurrent_journeys:
            in_flight.append(journeys.next())
        slot = rng.randrange(len(in_flight))
        customer, drafts = in_flight[slot]
        draft = drafts.pop(0)
        if not drafts:
            in_flight[slot] = in_flight[-1]
            in_flight.pop()
        clock += rng.expovariate(1.0 / spec.mean_gap_ms)
        event = _stamp(spec, rng, journeys, customer, draft, int(clock))
        position += 1
        release = position
        if rng.random() < spec.out_of_order_rate:
            release += rng.randint(1, 200)
        heapq.heappush(pending, (release, sequence, event))
        sequence += 1
        if rng.random() < spec.duplicate_rate:
            duplicate = LabelledEvent(
                dict(event.record), event.keys, event.owners, event.roles, event.customer_id, True
            )
            heapq.heappush(pending, (release + rng.randint(1, 500), sequence, duplicate))
            sequence += 1
        while pending and pending[0][0] <= position and emitted < spec.events:
            yield heapq.heappop(pending)[2]
            emitted += 1


def _stamp(
    spec: WorkloadSpec,
    rng: random.Random,
    journeys: _Journeys,
    customer: Customer,
    draft: _Draft,
    now_ms: int,
) -> LabelledEvent:
    identifiers = list(draft.identifiers)
    if identifiers and rng.random() < spec.junk_rate:
        identifiers.insert(rng.randrange(len(identifiers) + 1), journeys.junk())
    received_at = now_ms + rng.randint(5, 400)
    occurred_at = now_ms
    if rng.random() < spec.late_rate:
        occurred_at = now_ms - rng.randint(3_600_000, 48 * 3_600_000)
    record: dict[str, Any] = {
        "event_id": _uuid(rng),
        "channel": draft.channel,
        "source": draft.source,
        "event_type": draft.event_type,
        "occurred_at": occurred_at,
        "received_at": received_at,
        "identifiers": [{"type": t, "value": raw} for t, raw, _, _ in identifiers],
        "traits": dict(draft.traits),
        "properties": dict(draft.properties),
        "purchase": draft.purchase,
        "consent": draft.consent,
    }
    return LabelledEvent(
        record=record,
        keys=tuple(key for _, _, key, _ in identifiers),
        owners=tuple(
            customer.customer_id if role is IdentifierRole.CUSTOMER else None
            for _, _, _, role in identifiers
        ),
        roles=tuple(role for _, _, _, role in identifiers),
        customer_id=customer.customer_id if identifiers else None,
    )


def channel_events(spec: WorkloadSpec) -> Iterator[dict[str, Any]]:
    """The workload as plain ChannelEvent dicts (times as epoch-millisecond ints), lazily."""
    return (event.record for event in labelled_events(spec))


def ground_truth(spec: WorkloadSpec) -> GroundTruth:
    """Replay the workload and record who owns every identifier key that appears in it."""
    return ground_truth_of(labelled_events(spec))


def ground_truth_of(events: Iterable[LabelledEvent]) -> GroundTruth:
    truth = GroundTruth()
    for event in events:
        truth.add(event)
    return truth


def linked_key_sets(events: Iterable[LabelledEvent]) -> Iterator[tuple[str, ...]]:
    """Per event, the customer identifiers it links (junk, tablets and generic values left out).

    Events with a single such key still yield it: that identifier must end up in some profile.
    """
    for event in events:
        keys = event.customer_keys
        if keys:
            yield keys


def deterministic_links(events: Iterable[LabelledEvent]) -> Iterator[tuple[str, str]]:
    """Identifier pairs that co-occur in valid events, as a star per event (first key to the rest).

    A star spans the same connected component as every pair would, at linear cost.
    """
    for keys in linked_key_sets(events):
        anchor = keys[0]
        for other in keys[1:]:
            if other != anchor:
                yield anchor, other
