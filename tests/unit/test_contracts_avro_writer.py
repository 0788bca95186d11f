"""The compiled Avro writers write exactly fastavro's bytes, and leave to fastavro what they
do not take (so odd values and invalid records are met as before)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from typing import Any

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from omnid.contracts import AvroCodec, default_catalog
from omnid.contracts.avro_writer import Unsupported, compile_writer
from omnid.errors import InvalidEvent, RejectionReason

CATALOG = default_catalog()
COMPILED = sorted(n for n, v in CATALOG.current.items() if compile_writer(v.parsed) is not None)
NAMES = st.text(max_size=6)


def _fastavro(full_name: str, record: Any) -> bytes:
    buffer = io.BytesIO()
    schemaless_writer(buffer, CATALOG.schema(full_name).parsed, record)
    return buffer.getvalue()


def _values(schema: Any) -> st.SearchStrategy[Any]:
    """Values a schema accepts, drawn widely: every branch of a union, edge numbers, unicode."""
    if isinstance(schema, list):
        return st.one_of([_values(branch) for branch in schema])
    kind = schema if isinstance(schema, str) else schema["type"]
    if isinstance(kind, dict | list):
        return _values(kind)
    if kind == "record":
        required = {f["name"]: _values(f["type"]) for f in schema["fields"] if "default" not in f}
        optional = {f["name"]: _values(f["type"]) for f in schema["fields"] if "default" in f}
        return st.fixed_dictionaries(required, optional=optional)
    if kind == "array":
        return st.lists(_values(schema["items"]), max_size=3)
    if kind == "map":
        return st.dictionaries(NAMES, _values(schema["values"]), max_size=3)
    return {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(1 << 31), (1 << 31) - 1),
        "long": st.integers(-(1 << 63), (1 << 63) - 1) | st.integers(-300, 300),
        "double": st.floats(allow_nan=True, allow_infinity=True),
        "string": st.text(max_size=20),
    }[kind]


def test_the_worker_outputs_are_compiled_and_the_channel_event_is_not() -> None:
    # ChannelEvent carries a decimal (bytes), which the compiler leaves to fastavro.
    assert {"omnid.ProfileUpdate", "omnid.IdentityChange", "omnid.PrivacyReceipt"} <= set(COMPILED)
    assert compile_writer(CATALOG.schema("omnid.ChannelEvent").parsed) is None


@pytest.mark.parametrize("full_name", COMPILED)
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_compiled_writer_writes_fastavros_bytes(full_name: str, data: st.DataObject) -> None:
    record = data.draw(_values(CATALOG.schema(full_name).parsed))
    writer = compile_writer(CATALOG.schema(full_name).parsed)
    assert writer is not None
    assert writer(record) == _fastavro(full_name, record)
    assert writer(record) == _fastavro(full_name, record)  # again, through the memos


def _profile_update(**overrides: Any) -> dict[str, Any]:
    record: dict[str, Any] = {
        "profile_id": "01HQVMZ19AN9QV1KBY45BNE19Z",
        "version": 2,
        "status": "active",
        "identifiers": [
            {
                "type": "email",
                "value": "ann@example.com",
                "added_at": 1,
                "event_id": "e",
                "rule": "anchor",
            }
        ],
        "traits": {
            "city": {"value": "wells", "event_time": 5, "source_priority": 60, "event_id": "e"}
        },
        "computed": {
            "event_count": 1,
            "first_seen": 1,
            "last_seen": 1,
            "last_channel": "web",
            "channel_counts": {"web": 1},
            "order_count": 0,
            "revenue": {"EUR": 2.5},
            "consent": {},
        },
        "merged_from": [],
        "cause": {"kind": "event", "event_id": "e"},
        "updated_at": 1,
    }
    record.update(overrides)
    return record


@pytest.mark.parametrize(
    "odd",
    [
        {"updated_at": datetime(2026, 12, 1, tzinfo=UTC)},  # a datetime for timestamp-millis
        {"version": True},  # a bool where a long goes
        {"merged_from": ("a", "b")},  # a tuple for an array
        {"version": 2.0},  # a float where a long goes
        {
            "traits": {
                "t": {"value": 1 << 70, "event_time": 5, "source_priority": 1, "event_id": "e"}
            }
        },
    ],
)
def test_values_only_fastavro_takes_are_written_by_it(odd: dict[str, Any]) -> None:
    writer = compile_writer(CATALOG.schema("omnid.ProfileUpdate").parsed)
    assert writer is not None
    record = _profile_update(**odd)
    with pytest.raises(Unsupported):
        writer(record)
    codec = AvroCodec(CATALOG)
    encoded = codec.encode("omnid.ProfileUpdate", record)
    assert encoded == codec.header_for("omnid.ProfileUpdate") + _fastavro(
        "omnid.ProfileUpdate", record
    )


@pytest.mark.parametrize(
    ("invalid", "named"),
    [
        ({"version": "two"}, "version"),
        (
            {"identifiers": [{"type": "email", "value": "v", "added_at": 1, "event_id": "e"}]},
            "rule",
        ),
    ],
)
def test_an_invalid_record_is_refused_as_before(invalid: dict[str, Any], named: str) -> None:
    codec = AvroCodec(CATALOG)
    with pytest.raises(InvalidEvent) as refused:
        codec.encode("omnid.ProfileUpdate", _profile_update(**invalid))
    assert refused.value.reason is RejectionReason.SCHEMA_INVALID
    assert named in refused.value.detail
