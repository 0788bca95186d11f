"""`omnid import` on a real broker: good rows published, bad rows reported by line, exit code."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from omnid.cli import main
from omnid.config import PROJECT_ROOT
from omnid.contracts import Channel, events_topic

pytestmark = pytest.mark.kafka

SAMPLES = PROJECT_ROOT / "samples"


@pytest.fixture
def topic_prefix(
    events_topics: Any, kafka_bootstrap: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[str]:
    with events_topics("import", [Channel.POS, Channel.CRM]) as prefix:
        monkeypatch.setenv("OMNID_KAFKA_BOOTSTRAP", kafka_bootstrap)
        monkeypatch.setenv("OMNID_TOPIC_PREFIX", prefix)
        yield prefix


def test_sample_pos_export_imports_cleanly(
    topic_prefix: str, read_channel_events: Callable[..., list[dict[str, Any]]]
) -> None:
    code = main(
        [
            "import",
            "--channel",
            "pos",
            "--mapping",
            str(SAMPLES / "pos-mapping.yaml"),
            str(SAMPLES / "pos-sales.csv"),
        ]
    )
    assert code == 0
    events = read_channel_events(events_topic(Channel.POS, topic_prefix), count=4)
    assert [e["event_id"] for e in events] == ["R-1001", "R-1002", "R-1003", "R-1004"]
    first = events[0]
    assert first["identifiers"] == [
        {"type": "pos_customer_id", "value": "C-501"},
        {"type": "loyalty_id", "value": "LC-9001"},
        {"type": "email", "value": "ann.smith@inbox.example"},
        {"type": "phone", "value": "020 7946 0123"},
    ]
    assert first["purchase"] == {
        "order_id": "R-1001",
        "amount": 42.5,
        "currency": "GBP",
        "amount_decimal": Decimal("42.5000"),
    }
    assert first["occurred_at"] == datetime(
        2026, 11, 1, 9, 15, tzinfo=UTC
    )  # London = UTC in November
    assert (first["channel"], first["source"], first["event_type"]) == (
        "pos",
        "store-tills",
        "purchase",
    )


def test_bad_rows_are_reported_by_line_and_good_rows_still_published(
    topic_prefix: str,
    read_channel_events: Callable[..., list[dict[str, Any]]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    export = tmp_path / "tills.csv"
    export.write_text(
        "receipt_id,sold_at,store,customer_no,loyalty_card,email,phone,first_name,last_name,total,currency\n"
        "R-1,01/11/2026 09:15,S1,C-1,,,,Ann,,10.00,GBP\n"  # line 2: good
        "R-2,01/11/2026 09:16,S1,,,,,Bob,,5.00,GBP\n"  # line 3: no identifier
        "R-3,not a date,S1,C-3,,,,Cy,,5.00,GBP\n"  # line 4: bad time
        "R-4,01/11/2026 09:18,S1,C-4,,,,Di,,five,GBP\n"  # line 5: bad amount
        "R-5,01/11/2026 09:19,S1,C-5\n"  # line 6: too few fields
        '"R-6",01/11/2026 09:20,S1,C-6,,,,"Multi\nline",,1.00,GBP\n'  # lines 7-8: good
        "R-7,01/11/2026 09:21,S1,,,,,Eve,,2.00,GBP\n"  # line 9: no identifier
    )
    rejects = tmp_path / "rejects.csv"
    code = main(
        [
            "import",
            "--channel",
            "pos",
            "--mapping",
            str(SAMPLES / "pos-mapping.yaml"),
            "--rejects",
            str(rejects),
            str(export),
        ]
    )
    assert code == 1
    with rejects.open() as stream:
        rows = [(int(r["line"]), r["reason"]) for r in csv.DictReader(stream)]
    assert rows == [
        (3, "no_identifier"),
        (4, "invalid_field"),
        (5, "invalid_field"),
        (6, "invalid_field"),
        (9, "no_identifier"),
    ]
    assert "rejected 5 rows" in capsys.readouterr().err
    events = read_channel_events(events_topic(Channel.POS, topic_prefix), count=2)
    assert [e["event_id"] for e in events] == ["R-1", "R-6"]
    assert events[1]["traits"] == {"first_name": "Multi\nline"}


def test_json_lines_export_reports_unparseable_lines(
    topic_prefix: str, read_channel_events: Callable[..., list[dict[str, Any]]], tmp_path: Path
) -> None:
    export = tmp_path / "contacts.jsonl"
    good = (SAMPLES / "crm-contacts.jsonl").read_text().splitlines()
    export.write_text("\n".join([good[0], "{not json", "[1, 2]", good[1]]) + "\n")
    rejects = tmp_path / "rejects.csv"
    code = main(
        [
            "import",
            "--channel",
            "crm",
            "--mapping",
            str(SAMPLES / "crm-mapping.yaml"),
            "--rejects",
            str(rejects),
            str(export),
        ]
    )
    assert code == 1
    with rejects.open() as stream:
        assert [(r["line"], r["reason"]) for r in csv.DictReader(stream)] == [
            ("2", "undecodable"),
            ("3", "invalid_field"),
        ]
    events = read_channel_events(events_topic(Channel.CRM, topic_prefix), count=2)
    assert [e["identifiers"][0]["value"] for e in events] == ["CRM-1", "CRM-2"]
    assert events[0]["consent"] == [{"purpose": "email_marketing", "granted": True}]


def test_mapping_naming_a_missing_column_fails_before_publishing(
    topic_prefix: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    export = tmp_path / "odd.csv"
    export.write_text("id,when\n1,2026-01-01T00:00:00Z\n")
    code = main(
        ["import", "--channel", "pos", "--mapping", str(SAMPLES / "pos-mapping.yaml"), str(export)]
    )
    assert code == 2
    assert "not in the header" in capsys.readouterr().err
