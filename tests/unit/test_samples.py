"""The sample exports work as written: every identifier they carry passes the default rules.

A sample value the blocklist refuses (`ann@example.com` once) silently never reaches a profile,
and a newcomer who looks it up gets `400 blocked` without knowing why.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from omnid.adapters.import_mapping import ImportMapping, channel_event_from_row
from omnid.adapters.segment import WriteKeyTarget
from omnid.config import PROJECT_ROOT, Settings
from omnid.contracts import Channel
from omnid.identity.rules import normalise
from omnid.rules_file import load_rules

SAMPLES = PROJECT_ROOT / "samples"


def _rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="") as stream:
        if path.suffix == ".csv":
            return list(csv.DictReader(stream))
        return [json.loads(line) for line in stream if line.strip()]


@pytest.mark.parametrize(
    ("export", "mapping", "channel"),
    [
        ("pos-sales.csv", "pos-mapping.yaml", Channel.POS),
        ("crm-contacts.jsonl", "crm-mapping.yaml", Channel.CRM),
    ],
)
def test_every_sample_identifier_passes_the_default_rules(
    export: str, mapping: str, channel: Channel
) -> None:
    rules = load_rules(Settings().rules_file)
    loaded = ImportMapping.load(SAMPLES / mapping)
    target = WriteKeyTarget(channel, loaded.source)
    identifiers = [
        (identifier["type"], identifier["value"])
        for line, row in enumerate(_rows(SAMPLES / export), start=2)
        for identifier in channel_event_from_row(row, loaded, target, line)["identifiers"]
    ]
    assert identifiers
    for identifier_type, value in identifiers:
        normalise(rules, identifier_type, value)  # raises RejectedIdentifier when refused
