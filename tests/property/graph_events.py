"""Hypothesis strategies for channel events over small identifier pools, so that shared
identifiers, merge chains and limit conflicts are frequent and failures shrink to a few events."""

from __future__ import annotations

from hypothesis import strategies as st

from omnid.identity.model import ConsentChange, Event, Identifier, Purchase
from omnid.identity.simulator import Operation

POOLS: dict[str, list[str]] = {
    "user_id": ["u1", "u2", "u3"],
    "crm_id": ["c1", "c2"],
    "email": ["ann@shop.io", "bob@shop.io", "cat@shop.io", "dan@shop.io"],
    "phone": ["+447911123456", "+447911654321"],
    "device_id": ["d1", "d2", "d3", "d4"],
    "anonymous_id": ["a1", "a2", "a3", "a4", "a5"],
}
JUNK = [Identifier("email", "test@test.com"), Identifier("user_id", '"null"')]
CHANNELS = ["web", "app", "pos", "crm"]

identifiers = st.one_of(
    st.sampled_from([Identifier(t, v) for t, values in POOLS.items() for v in values]),
    st.sampled_from(JUNK),
)


@st.composite
def event_lists(draw: st.DrawFn, max_events: int = 14) -> list[Event]:
    """Events e0..eN; some repeat an earlier event exactly (duplicate delivery)."""
    count = draw(st.integers(1, max_events))
    events: list[Event] = []
    for index in range(count):
        if events and draw(st.integers(0, 9)) == 0:
            events.append(draw(st.sampled_from(events)))
            continue
        occurred = draw(st.integers(0, 20))
        traits = draw(
            st.dictionaries(
                st.sampled_from(["name", "tier"]),
                st.one_of(st.none(), st.sampled_from(["a", "b"]), st.integers(0, 2)),
                max_size=2,
            )
        )
        purchase = draw(
            st.none()
            | st.builds(
                Purchase,
                st.sampled_from(["o1", "o2", "o3"]),
                st.sampled_from([1.5, 10.0, 0.1]),
                st.sampled_from(["GBP", "EUR"]),
            )
        )
        consent = draw(
            st.none()
            | st.lists(
                st.builds(ConsentChange, st.sampled_from(["email", "sms"]), st.booleans()),
                min_size=1,
                max_size=2,
            ).map(tuple)
        )
        events.append(
            Event(
                event_id=f"e{index}",
                channel=draw(st.sampled_from(CHANNELS)),
                source="test",
                event_type="track",
                occurred_at=occurred,
                received_at=occurred + draw(st.sampled_from([0, 5, -3])),
                identifiers=tuple(draw(st.lists(identifiers, min_size=1, max_size=4))),
                traits=traits,
                purchase=purchase,
                consent=consent,
            )
        )
    return events


@st.composite
def shared_device_events(draw: st.DrawFn, max_events: int = 16) -> list[Event]:
    """Many people on two shared devices: a device alone (browsing), a device with a strong
    identifier (logging in), or strong identifiers together (a real link between them)."""
    strong = st.sampled_from(
        [Identifier("user_id", f"u{n}") for n in range(4)]
        + [Identifier("email", f"p{n}@shop.io") for n in range(4)]
        + [Identifier("loyalty_id", f"L{n}") for n in range(3)]
    )
    weak = st.sampled_from(
        [
            Identifier("device_id", "tablet-1"),
            Identifier("device_id", "tablet-2"),
            Identifier("anonymous_id", "kiosk-cookie"),
        ]
    )
    shapes = st.one_of(
        st.tuples(weak),
        st.tuples(weak, strong),
        st.tuples(weak, weak, strong),
        st.tuples(strong, strong),
    )
    count = draw(st.integers(1, max_events))
    return [
        Event(
            event_id=f"e{index}",
            channel="app",
            source="kiosk",
            event_type="identify",
            occurred_at=(at := draw(st.integers(0, 20))),
            received_at=at,
            identifiers=draw(shapes),
        )
        for index in range(count)
    ]


def phases(items: list[Event | Operation | None]) -> list[list[Event | Operation]]:
    """Events and operations in the runs they are delivered in: each None is a settled point
    (everything before it is processed before anything after it is sent)."""
    runs: list[list[Event | Operation]] = [[]]
    for item in items:
        if item is None:
            runs.append([])
        else:
            runs[-1].append(item)
    return runs
