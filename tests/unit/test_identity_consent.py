"""Consent per purpose: state, time and source; a merge of disagreeing profiles is a conflict
shown on the ProfileUpdate until a newer consent event settles it."""

from __future__ import annotations

from omnid.identity.model import ConsentChange, Event, Identifier
from omnid.identity.simulator import Simulator
from omnid.rules_file import load_rules

RULES = load_rules()


def event(
    event_id: str, at: int, source: str, *identifiers: tuple[str, str], email_ok: bool | None
) -> Event:
    consent = (ConsentChange("email", email_ok),) if email_ok is not None else None
    return Event(
        event_id=event_id,
        channel="web",
        source=source,
        event_type="identify",
        occurred_at=at,
        received_at=at,
        identifiers=tuple(Identifier(t, v) for t, v in identifiers),
        consent=consent,
    )


def test_merged_profiles_that_disagree_show_a_conflict_until_a_newer_consent_event() -> None:
    simulator = Simulator(RULES, partitions=4, seed=3)
    apart = simulator.run(
        [
            event("c1", 100, "web-shop", ("email", "ann@shop.io"), email_ok=True),
            event("c2", 200, "esp", ("phone", "+447911123456"), email_ok=False),
        ]
    )
    before = apart.profile_of("email:ann@shop.io")
    assert before is not None and not before.consent["email"].conflict
    merged = simulator.run(
        [
            event(
                "c3",
                300,
                "crm",
                ("email", "ann@shop.io"),
                ("phone", "+447911123456"),
                email_ok=None,
            )
        ],
        after=apart,
    )
    profile = merged.profile_of("email:ann@shop.io")
    assert profile is not None and profile.merged_from
    shown = merged.updates[profile.profile_id]["computed"]["consent"]["email"]
    # The newer change wins (esp's refusal), and the disagreement is flagged.
    assert shown == {"granted": False, "at": 200, "source": "esp", "conflict": True}

    settled = simulator.run(
        [event("c4", 400, "esp", ("email", "ann@shop.io"), email_ok=True)], after=merged
    )
    shown = settled.updates[profile.profile_id]["computed"]["consent"]["email"]
    assert shown == {"granted": True, "at": 400, "source": "esp", "conflict": False}


def test_an_older_consent_event_does_not_settle_a_conflict() -> None:
    simulator = Simulator(RULES, partitions=2, seed=1)
    merged = simulator.run(
        [
            event("c1", 100, "web-shop", ("email", "bob@shop.io"), email_ok=True),
            event("c2", 200, "esp", ("phone", "+447911123999"), email_ok=False),
        ]
    )
    merged = simulator.run(
        [
            event(
                "c3",
                300,
                "crm",
                ("email", "bob@shop.io"),
                ("phone", "+447911123999"),
                email_ok=None,
            )
        ],
        after=merged,
    )
    late = simulator.run(
        [event("c0", 50, "import", ("email", "bob@shop.io"), email_ok=True)], after=merged
    )
    profile = late.profile_of("email:bob@shop.io")
    assert profile is not None
    state = profile.consent["email"]
    assert (state.granted, state.conflict, state.source) == (False, True, "esp")
