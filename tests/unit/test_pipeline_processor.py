"""The worker's record handling without a broker: dead letters, output routing, partitioning,
and the local table store's checkpoints."""

from __future__ import annotations

import gc
from pathlib import Path

import pytest

from omnid.contracts import CHANNEL_EVENT, AvroCodec, new_channel_event
from omnid.identity import records
from omnid.identity.history_records import decode_history
from omnid.identity.rules import NormalisationCache
from omnid.kafka.stages import Table
from omnid.pipeline.partitioning import murmur2, partition_for
from omnid.pipeline.processor import (
    EVENTS_HEADER,
    Incoming,
    LocalCommand,
    Outgoing,
    StageProcessor,
    StateWrite,
    identity_change_headers,
    identity_change_tags,
)
from omnid.pipeline.state_store import StoreClosed, TableStore
from omnid.pipeline.topic_names import PipelineTopics
from omnid.rules_file import load_rules

TOPICS = PipelineTopics.under("unit")


@pytest.fixture(scope="module")
def processor() -> StageProcessor:
    return StageProcessor(load_rules(), AvroCodec.from_settings(), TOPICS)


def _event(**overrides: object) -> dict[str, object]:
    record = new_channel_event(
        event_id="e1",
        channel="web",
        source="unit",
        event_type="identify",
        identifiers=[("email", " Ann@Inbox.EXAMPLE "), ("user_id", "u1")],
        occurred_at=1_709_251_200_000,
        received_at=1_709_251_200_000,
        traits={"first_name": "Ann"},
    )
    record.update(overrides)
    return record


def _incoming(value: bytes | None, topic: str = TOPICS.events[0], partition: int = 0) -> Incoming:
    return Incoming(topic, partition, 41, b"k", value)


def run_to_quiet(
    processor: StageProcessor, first: list, tables: dict | None = None
) -> tuple[dict, list]:
    """Feeds outputs back in like the topics would, one table per stage, until nothing is left."""
    tables = {} if tables is None else tables
    published = []
    queue = list(first)
    while queue:
        out = queue.pop(0)
        if out.topic not in (TOPICS.identity_commands, TOPICS.profile_commands):
            published.append(out)
            continue
        outputs = processor.process(
            _incoming(out.value, out.topic), lambda t, k: tables.get((t, k))
        )
        for write in processor.take_state_writes():
            if write.value is None:  # a delete, as RocksDB applies it
                tables.pop((write.table, write.key), None)
            else:
                tables[(write.table, write.key)] = write.value
        published.extend(processor.take_profile_updates())
        queue.extend(outputs)
    return tables, published


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\x00garbage", "undecodable"),
        (None, "undecodable"),
        ("profile_update", "schema_invalid"),
        ("no_identifiers", "no_identifier"),
        ("nan_revenue", "invalid_field"),
    ],
)
def test_bad_input_becomes_a_dead_letter_with_reason_and_source(
    processor: StageProcessor, payload: object, reason: str
) -> None:
    codec = processor.codec
    if payload == "no_identifiers":
        payload = codec.encode(CHANNEL_EVENT, _event(identifiers=[]))
    elif payload == "nan_revenue":  # Avro allows it; a producer other than ours may write it
        nan_order = {"order_id": "o", "amount": float("nan"), "currency": "EUR"}
        payload = codec.encode(CHANNEL_EVENT, _event(purchase=nan_order))
    elif payload == "profile_update":
        payload = codec.encode(
            "omnid.IdentityChange",
            {"change_id": "c", "kind": "merged", "profile_id": "P", "other_profile_id": None,
             "identifiers": [], "event_id": None, "reason": None, "at": 0},
        )  # fmt: skip
    outputs = processor.process(_incoming(payload), lambda *_: None)  # type: ignore[arg-type]
    assert processor.take_state_writes() == []
    [dead] = outputs
    headers = dict(dead.headers or [])
    assert dead.topic == TOPICS.dead_letter
    assert dead.value == payload
    assert headers[b"reason".decode()] == reason.encode()
    assert headers["source_topic"] == TOPICS.events[0].encode()
    assert (headers["source_partition"], headers["source_offset"]) == (b"0", b"41")


def test_a_good_event_becomes_one_profile_update_keyed_by_profile_id(
    processor: StageProcessor,
) -> None:
    first = processor.process(
        _incoming(processor.codec.encode(CHANNEL_EVENT, _event())), lambda *_: None
    )
    assert [o.topic for o in first] == [TOPICS.identity_commands]
    tables, published = run_to_quiet(processor, first)
    updates = [
        (o.key, processor.codec.decode(o.value).record)
        for o in published
        if o.topic == TOPICS.profile_updates and o.value
    ]
    key, latest = max(updates, key=lambda update: update[1]["version"])
    assert key == latest["profile_id"].encode()
    assert latest["computed"]["event_count"] == 1
    assert {i["value"] for i in latest["identifiers"]} == {"ann@inbox.example", "u1"}
    key = "email:ann@inbox.example"
    owner = records.decode(tables[(Table.IDENTIFIERS, key)], key).owner
    assert owner == latest["profile_id"]


def test_a_duplicate_command_writes_no_state(processor: StageProcessor) -> None:
    first = processor.process(
        _incoming(processor.codec.encode(CHANNEL_EVENT, _event())), lambda *_: None
    )
    command = first[0]
    stored: dict[str, bytes] = {}

    def handle() -> list[StateWrite]:
        processor.process(
            _incoming(command.value, TOPICS.identity_commands), lambda _t, k: stored.get(k)
        )
        writes = processor.take_state_writes()
        for write in writes:
            stored[write.key] = write.value
        return writes

    assert len(handle()) == 1
    assert handle() == []


def _ids(*pairs: tuple[str, str]) -> list[dict[str, str]]:
    return [{"type": kind, "value": value} for kind, value in pairs]


def _profile_updates(codec: AvroCodec, published: list[Outgoing]) -> dict[bytes, dict]:
    """What the compacted topic keeps: each profile's latest update, none after a tombstone."""
    latest: dict[bytes, dict] = {}
    for out in published:
        if out.topic == TOPICS.profile_updates and out.key and not out.value:
            latest.pop(out.key, None)
        elif out.topic == TOPICS.profile_updates and out.value and out.key:
            record = codec.decode(out.value).record
            if record["version"] > latest.get(out.key, {"version": -1})["version"]:
                latest[out.key] = record
    return latest


def stored(table: Table, key: str, value: bytes | None) -> object:
    """A table's value as the worker reads it back (histories have a codec of their own)."""
    if value is None:
        return None
    return decode_history(value) if table is Table.HISTORY else records.decode(value, key)


def test_commands_handled_locally_in_one_batch_give_what_the_topic_round_trip_gives() -> None:
    events = [
        _event(),
        # A second profile, then an event that merges the two (Absorb crosses stages locally).
        _event(event_id="e2", identifiers=_ids(("crm_id", "c7"), ("loyalty_id", "L-1"))),
        _event(event_id="e3", identifiers=_ids(("email", "ann@inbox.example"), ("crm_id", "c7"))),
    ]
    via_topics = StageProcessor(load_rules(), AvroCodec.from_settings(), TOPICS)
    codec = via_topics.codec
    tables: dict[tuple[Table, str], bytes] = {}
    published: list[Outgoing] = []
    for record in events:
        first = via_topics.process(_incoming(codec.encode(CHANNEL_EVENT, record)), lambda *_: None)
        _, more_published = run_to_quiet(via_topics, first, tables)
        published.extend(more_published)

    local = StageProcessor(load_rules(), codec, TOPICS)
    local.local_router = lambda _stage, key: partition_for(key, 6)
    local_tables: dict[tuple[Table, str], bytes] = {}
    local_published: list[Outgoing] = []
    queue: list[Outgoing | LocalCommand] = []
    for record in events:  # one batch: every state change is taken at the end
        queue.extend(local.process(_incoming(codec.encode(CHANNEL_EVENT, record)), lambda *_: None))
        while queue:
            out = queue.pop(0)
            if isinstance(out, LocalCommand):
                assert out.partition == partition_for(out.command.key, 6)
                queue.extend(local.handle(out.table, out.partition, out.command, lambda *_: None))
            else:
                assert out.topic not in (TOPICS.identity_commands, TOPICS.profile_commands)
                local_published.append(out)
    writes = local.take_state_writes()
    assert len({(w.table, w.key) for w in writes}) == len(writes)  # one write per changed key
    updates = local.take_profile_updates()
    assert len({o.key for o in updates}) == len(updates)  # one update per changed profile
    local_published.extend(updates)
    local_tables = {(w.table, w.key): w.value for w in writes}

    assert local_tables.keys() == tables.keys()
    assert {k: stored(*k, v) for k, v in local_tables.items()} == {
        k: stored(*k, v) for k, v in tables.items()
    }
    assert _profile_updates(codec, local_published) == _profile_updates(codec, published)
    merged_away = [o for o in local_published if o.topic == TOPICS.profile_updates and not o.value]
    assert len(merged_away) == 1


def test_a_batch_publishes_one_update_per_profile_naming_every_event_it_shows() -> None:
    processor = StageProcessor(load_rules(), AvroCodec.from_settings(), TOPICS)
    processor.local_router = lambda _stage, key: partition_for(key, 6)
    codec = processor.codec
    queue: list[Outgoing | LocalCommand] = []
    for event_id in ("e1", "e2", "e3"):
        queue.extend(
            processor.process(
                _incoming(codec.encode(CHANNEL_EVENT, _event(event_id=event_id))), lambda *_: None
            )
        )
    while queue:
        out = queue.pop(0)
        if isinstance(out, LocalCommand):
            queue.extend(processor.handle(out.table, out.partition, out.command, lambda *_: None))
    processor.take_state_writes()
    [update] = processor.take_profile_updates()
    assert codec.decode(update.value).record["computed"]["event_count"] == 3
    assert dict(update.headers or [])[EVENTS_HEADER] == b"e1,e2,e3"
    assert processor.take_profile_updates() == []


def test_a_profile_is_counted_as_created_once_when_first_stored() -> None:
    """`omnid_profiles_created_total` counts founded profiles, whatever the founding command's
    snapshots say (Found shows only its Apply's, version 2) and however often an event comes."""
    processor = StageProcessor(load_rules(), AvroCodec.from_settings(), TOPICS)
    codec = processor.codec
    ann = _event(event_id="e1")
    bob = _event(event_id="e2", identifiers=_ids(("email", "bob@inbox.example")))
    ann_again = _event(event_id="e3")
    tables: dict = {}
    for record in (ann, bob, ann_again, ann):
        first = processor.process(_incoming(codec.encode(CHANNEL_EVENT, record)), lambda *_: None)
        tables, _ = run_to_quiet(processor, first, tables)
    assert processor.tally.profiles_created == 2


def test_identity_changes_carry_their_kind_so_followers_skip_them_without_decoding() -> None:
    processor = StageProcessor(load_rules(), AvroCodec.from_settings(), TOPICS)
    codec = processor.codec
    tables: dict[tuple[Table, str], bytes] = {}
    published: list[Outgoing] = []
    for record in (
        _event(),
        _event(event_id="e2", identifiers=_ids(("crm_id", "c7"))),
        _event(event_id="e3", identifiers=_ids(("email", "ann@inbox.example"), ("crm_id", "c7"))),
    ):
        first = processor.process(_incoming(codec.encode(CHANNEL_EVENT, record)), lambda *_: None)
        published.extend(run_to_quiet(processor, first, tables)[1])
    changes = [o for o in published if o.topic == TOPICS.identity_changelog]
    assert any(codec.decode(o.value).record["kind"] == "merged" for o in changes if o.value)
    for change in changes:
        assert change.value is not None
        kind = codec.decode(change.value).record["kind"]
        assert identity_change_tags(change.headers) == (kind, False)  # no operator asked
    asked = identity_change_headers({"kind": "merged", "operator": "ops", "event_id": "r1"})
    assert identity_change_tags(asked) == ("merged", True)
    assert identity_change_tags(None) is None  # an older worker's record: decoded


def test_handling_records_leaves_no_cyclic_garbage() -> None:
    # A worker's cyclic collector seldom runs (serve.GC_THRESHOLDS: one older-generation
    # collection in a 1,000,000-event run), so a cycle made per record would stay for the run.
    # A tiny normalisation cache, so that its evictions happen here too.
    processor = StageProcessor(load_rules(), AvroCodec.from_settings(), TOPICS)
    processor.normalisations = NormalisationCache(processor.rules, entries=4)
    codec = processor.codec
    events = [
        _event(
            event_id=f"e{i}",
            identifiers=_ids(
                ("email", f"c{i % 7}@inbox.example"),
                ("phone", f"no phone {i}" if i % 3 else f"07911 12345{i % 10}"),
                ("user_id", "null"),  # blocked
            ),
        )
        for i in range(60)
    ]
    tables: dict[tuple[Table, str], bytes] = {}
    gc.collect()
    gc.disable()
    try:
        for record in events:
            first = processor.process(
                _incoming(codec.encode(CHANNEL_EVENT, record)), lambda t, k: tables.get((t, k))
            )
            run_to_quiet(processor, first, tables)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_murmur2_matches_kafkas_java_partitioner() -> None:
    # Vectors from Kafka's own partitioner tests.
    assert murmur2(b"21") == -973932308
    assert murmur2(b"foobar") == -790332482
    assert murmur2(b"a-little-bit-long-string") == -985981536
    assert murmur2(b"a-little-bit-longer-string") == -1486304829
    assert murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") == -58897971
    assert murmur2(b"abc") == 479470107
    assert all(0 <= partition_for(f"k{i}", 6) < 6 for i in range(100))


def test_table_store_moves_data_and_checkpoint_together_and_keeps_them(tmp_path: Path) -> None:
    store = TableStore(tmp_path / "profiles")
    store.write([("a", b"1"), ("b", b"2")], {3: 17})
    store.write([("b", None)], {3: 18})
    store.close()
    reopened = TableStore(tmp_path / "profiles")
    assert (reopened.get("a"), reopened.get("b")) == (b"1", None)
    assert (reopened.checkpoint(3), reopened.checkpoint(0)) == (18, 0)
    assert reopened.count() == 1
    reopened.close()


def test_a_read_after_the_table_is_closed_is_a_store_closed_error_not_a_crash(
    tmp_path: Path,
) -> None:
    # A lookup can still be running when the worker's loop closes its tables at SIGTERM.
    store = TableStore(tmp_path / "identifiers")
    store.write([("a", b"1")], {0: 1})
    store.close()
    with pytest.raises(StoreClosed):
        store.get("a")
    with pytest.raises(StoreClosed):
        store.checkpoint(0)


def _privacy_request(kind: str, request_id: str) -> Incoming:
    record = {
        "request_id": request_id,
        "kind": kind,
        "subject": {"type": "email", "value": "ANN@inbox.example"},
        "profile_id": None,
        "requested_by": "unit",
        "reason": None,
        "requested_at": 1_709_251_300_000,
    }
    value = AvroCodec.from_settings().encode("omnid.PrivacyRequest", record)
    return Incoming(TOPICS.privacy_requests, 0, 7, b"email:ann@inbox.example", value)


def test_an_erased_identifier_is_stored_only_as_a_marker_under_an_hmac_key() -> None:
    processor = StageProcessor(
        load_rules(), AvroCodec.from_settings(), TOPICS, suppression_secret="unit"
    )
    read_none = lambda _t, _k: None  # noqa: E731
    tables, _ = run_to_quiet(processor, processor.process(_incoming(_event_bytes()), read_none))
    assert tables[(Table.IDENTIFIERS, "email:ann@inbox.example")] is not None
    first = processor.process(_privacy_request("erase", "r1"), read_none)
    tables, published = run_to_quiet(processor, first, tables)
    live = {key: value for key, value in tables.items() if value is not None}
    assert not [k for k in live if "ann@" in k[1] or "user_id:u1" in k[1]]
    assert not [k for k, v in live.items() if b"ann@" in v or b"Ann" in v]
    markers = [k for _t, k in live if k.startswith("suppressed:")]
    assert len(markers) == 2  # the email and the user id
    receipts = [o for o in published if o.topic == TOPICS.privacy_receipts]
    assert sorted(o.key for o in receipts) == [b"r1:accepted", b"r1:completed"]
    assert [o for o in published if o.topic == TOPICS.profile_updates and o.value is None]

    lifted, _ = run_to_quiet(
        processor, processor.process(_privacy_request("unsuppress", "r2"), read_none), tables
    )
    remaining = [k for (_t, k), v in lifted.items() if v is not None and k.startswith("supp")]
    assert len(remaining) == 1, "the email's marker is gone, the user id's stays"


def _event_bytes() -> bytes:
    return AvroCodec.from_settings().encode(CHANNEL_EVENT, _event())
