"""The compiled Avro writers and readers do exactly what fastavro does for what they take, and
leave to fastavro what they do not (so odd values, invalid records and bad bytes are met as
before)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastavro import schemaless_reader, schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from omnid.contracts import AvroCodec, default_catalog
from omnid.contracts.avro_reader import compile_reader
from omnid.contracts.avro_source import Unsupported
from omnid.contracts.avro_writer import compile_writer
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
    if kind == "bytes" and schema.get("logicalType") == "decimal":
        return st.decimals(-(10**13), 10**13, places=schema["scale"], allow_nan=False)
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


# -- readers ------------------------------------------------------------------------------------


def _read_fastavro(full_name: str, body: bytes) -> tuple[Any, int]:
    stream = io.BytesIO(body)
    record = schemaless_reader(stream, CATALOG.schema(full_name).parsed, None)
    return record, stream.tell()


def test_every_current_schema_has_a_compiled_reader() -> None:
    for version in CATALOG.current.values():
        assert compile_reader(version.parsed) is not None, version.full_name


def _agrees_or_defers(full_name: str, body: bytes) -> None:
    """What the compiled reader returns, fastavro returns too, from the whole payload;
    otherwise it defers (Unsupported, never another error) and fastavro decides."""
    reader = compile_reader(CATALOG.schema(full_name).parsed)
    assert reader is not None
    try:
        record = reader(b"header" + body, 6)
    except Unsupported:
        return
    expected, consumed = _read_fastavro(full_name, body)
    # NaN is never equal to itself: compare the records' reprs (they show every value).
    assert repr(record) == repr(expected)
    assert consumed == len(body)


@pytest.mark.parametrize("full_name", sorted(CATALOG.current))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_compiled_reader_reads_what_fastavro_reads(full_name: str, data: st.DataObject) -> None:
    # Longs past 62 bits and timestamps past datetime's range are left to fastavro.
    _agrees_or_defers(
        full_name, _fastavro(full_name, data.draw(_values(CATALOG.schema(full_name).parsed)))
    )


def test_the_records_the_pipeline_writes_are_read_without_fastavro() -> None:
    codec = AvroCodec(CATALOG)
    for full_name, record in (
        ("omnid.ProfileUpdate", _profile_update()),
        ("omnid.ChannelEvent", _channel_event()),
    ):
        reader = compile_reader(CATALOG.schema(full_name).parsed)
        assert reader is not None
        payload = codec.encode(full_name, record)
        header = len(codec.header_for(full_name))
        assert repr(reader(payload, header)) == repr(_read_fastavro(full_name, payload[header:])[0])


@pytest.mark.parametrize("full_name", sorted(CATALOG.current))
@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_on_damaged_bytes_the_compiled_reader_agrees_or_defers(
    full_name: str, data: st.DataObject
) -> None:
    """Truncated, flipped or random bytes."""
    schema = CATALOG.schema(full_name).parsed
    body = bytearray(_fastavro(full_name, data.draw(_values(schema))))
    if body and data.draw(st.booleans()):
        at = data.draw(st.integers(0, len(body) - 1))
        body[at] = data.draw(st.integers(0, 255))
    body = bytearray(body[: data.draw(st.integers(0, len(body)))]) + data.draw(
        st.binary(max_size=3)
    )
    _agrees_or_defers(full_name, bytes(body))


def test_trailing_and_truncated_bytes_are_refused_as_before() -> None:
    codec = AvroCodec(CATALOG)
    payload = codec.encode("omnid.ProfileUpdate", _profile_update())
    assert codec.decode(payload).record["computed"]["revenue"] == {"EUR": 2.5}
    with pytest.raises(InvalidEvent) as trailing:
        codec.decode(payload + b"\x00")
    assert trailing.value.reason is RejectionReason.UNDECODABLE
    assert "1 trailing bytes" in trailing.value.detail
    with pytest.raises(InvalidEvent) as truncated:
        codec.decode(payload[:-3])
    assert truncated.value.reason is RejectionReason.UNDECODABLE


def _channel_event() -> dict[str, Any]:
    return {
        "event_id": "e1",
        "channel": "pos",
        "source": "till",
        "event_type": "purchase",
        "occurred_at": 1_709_251_200_298,
        "received_at": 1_709_251_200_300,
        "identifiers": [{"type": "email", "value": "ann@example.com"}],
        "traits": {},
        "properties": {"n": 1.5},
        "purchase": {
            "order_id": "o1",
            "amount": 12.5,
            "currency": "EUR",
            "amount_decimal": Decimal("12.5000"),
        },
        "consent": [{"purpose": "email", "granted": True}],
    }


def test_decimals_and_timestamps_come_back_as_fastavro_makes_them() -> None:
    codec = AvroCodec(CATALOG)
    record = codec.decode(codec.encode("omnid.ChannelEvent", _channel_event())).record
    assert record["occurred_at"] == datetime(2024, 3, 1, 0, 0, 0, 298000, tzinfo=UTC)
    assert record["purchase"]["amount_decimal"] == Decimal("12.5000")
