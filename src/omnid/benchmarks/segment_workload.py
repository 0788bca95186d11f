"""A seeded Segment Tracking API workload for runs that go through the HTTP collector (the chaos
run): messages per customer as /v1/batch bodies per write key, the ChannelEvent each becomes
(the simulator's input, mapped by the collector's own pure mapping) and what each customer's
profile must count in the end.

Pure: no I/O. Every customer has one user id, one email, one web and one app anonymous id and
fixed traits, so the final profiles do not depend on the order the pipeline sees the events
in; values are synthetic (`inbox.example`).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from omnid.adapters.segment import ORDER_COMPLETED, WriteKeyTarget, channel_event_from_segment

WEB_KEY = "dev-web-key"
APP_KEY = "dev-app-key"
# 2024-03-01T00:00:00Z, one message a second after it: the same seed, the same bytes.
START_MS = 1_709_251_200_000


@dataclass(frozen=True)
class SegmentCustomer:
    user_id: str
    email: str
    web_anonymous_id: str
    app_anonymous_id: str
    name: str

    def identifier_keys(self) -> frozenset[str]:
        """The identifier keys a profile of this customer holds (type:value)."""
        return frozenset(
            {
                f"user_id:{self.user_id}",
                f"email:{self.email}",
                f"anonymous_id:{self.web_anonymous_id}",
                f"anonymous_id:{self.app_anonymous_id}",
            }
        )


@dataclass(frozen=True)
class SegmentMessage:
    """One Tracking API message, the write key it is sent with and whose it is."""

    write_key: str
    body: dict[str, Any]
    customer: SegmentCustomer
    order_cents: int  # 0 unless an Order Completed


@dataclass(frozen=True)
class CustomerTotals:
    events: int
    orders: int
    revenue_cents: int


def customer(index: int) -> SegmentCustomer:
    return SegmentCustomer(
        user_id=f"chaos-user-{index:05d}",
        email=f"chaos.customer{index:05d}@inbox.example",
        web_anonymous_id=f"chaos-web-{index:05d}",
        app_anonymous_id=f"chaos-app-{index:05d}",
        name=f"Customer {index:05d}",
    )


def segment_messages(customers: int, seed: int) -> Iterator[SegmentMessage]:
    """An endless stream: first each customer's two identifies (web and app: they join the
    anonymous ids to the user id), then anonymous page and screen views, product views and
    orders of random customers."""
    rng = random.Random(seed)
    people = [customer(index) for index in range(customers)]
    serial = 0

    def message(
        write_key: str, person: SegmentCustomer, kind: str, cents: int = 0, **fields: Any
    ) -> SegmentMessage:
        nonlocal serial
        serial += 1
        moment = datetime.fromtimestamp((START_MS + serial * 1000) / 1000, tz=UTC)
        body = {
            "type": kind,
            "messageId": f"chaos-{seed}-{serial:08d}",
            "timestamp": moment.isoformat().replace("+00:00", "Z"),
            **fields,
        }
        return SegmentMessage(write_key, body, person, cents)

    openings = [(WEB_KEY, p, p.web_anonymous_id) for p in people]
    openings += [(APP_KEY, p, p.app_anonymous_id) for p in people]
    rng.shuffle(openings)
    for write_key, person, anonymous_id in openings:
        yield message(
            write_key,
            person,
            "identify",
            userId=person.user_id,
            anonymousId=anonymous_id,
            traits={"email": person.email, "name": person.name},
        )
    while True:
        person = rng.choice(people)
        roll = rng.random()
        if roll < 0.3:
            yield message(WEB_KEY, person, "page", anonymousId=person.web_anonymous_id, name="home")
        elif roll < 0.5:
            yield message(
                APP_KEY, person, "screen", anonymousId=person.app_anonymous_id, name="feed"
            )
        elif roll < 0.8:
            yield message(
                WEB_KEY,
                person,
                "track",
                userId=person.user_id,
                anonymousId=person.web_anonymous_id,
                event="Product Viewed",
                properties={"sku": f"sku-{rng.randrange(200)}"},
            )
        else:
            cents = rng.randrange(500, 20_000)
            write_key, anonymous_id = rng.choice(
                ((WEB_KEY, person.web_anonymous_id), (APP_KEY, person.app_anonymous_id))
            )
            yield message(
                write_key,
                person,
                "track",
                cents,
                userId=person.user_id,
                anonymousId=anonymous_id,
                event=ORDER_COMPLETED,
                properties={
                    "order_id": f"order-{serial + 1}",
                    "revenue": f"{cents // 100}.{cents % 100:02d}",
                    "currency": "EUR",
                },
            )


def channel_events(
    messages: Iterable[SegmentMessage], write_keys: Mapping[str, WriteKeyTarget]
) -> list[dict[str, Any]]:
    """What the collector makes of each message (received at its own timestamp: the profile
    signatures compared do not include when an event was received)."""
    events = []
    for message in messages:
        occurred = datetime.fromisoformat(message.body["timestamp"].replace("Z", "+00:00"))
        received_at = int(occurred.timestamp() * 1000)
        events.append(
            channel_event_from_segment(message.body, write_keys[message.write_key], received_at)
        )
    return events


def expected_totals(messages: Iterable[SegmentMessage]) -> dict[str, CustomerTotals]:
    """Per user id: how many events, orders and how much revenue (EUR cents) were fed."""
    events: dict[str, int] = {}
    orders: dict[str, int] = {}
    cents: dict[str, int] = {}
    for message in messages:
        user = message.customer.user_id
        events[user] = events.get(user, 0) + 1
        orders[user] = orders.get(user, 0) + (message.order_cents > 0)
        cents[user] = cents.get(user, 0) + message.order_cents
    return {user: CustomerTotals(events[user], orders[user], cents[user]) for user in events}
