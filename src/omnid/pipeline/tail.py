"""`omnid tail profiles|changes|dead-letters`: the output topics decoded, one line per record."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from typing import Any

from omnid.config import Settings
from omnid.contracts import AvroCodec
from omnid.errors import InvalidEvent
from omnid.kafka.reader import TopicRecord, read_records
from omnid.pipeline.topic_names import PipelineTopics

STREAMS = ("profiles", "changes", "dead-letters")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "tail", help="print profile updates, identity changes or dead letters"
    )
    parser.add_argument("stream", choices=STREAMS)
    parser.add_argument("--from-beginning", action="store_true", help="start at the oldest record")
    parser.add_argument("--json", action="store_true", help="one JSON document per line")
    parser.add_argument("--limit", type=int, default=0, help="stop after N records (0 = follow)")
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=0.0,
        help="stop after this many seconds without a record (0 = never)",
    )
    parser.set_defaults(func=run)


def _time(millis: Any) -> str:
    if isinstance(millis, datetime):
        return millis.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(millis, int):
        return datetime.fromtimestamp(millis / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    return "-"


def describe_profile(key: str, record: dict[str, Any] | None) -> str:
    if record is None:
        return f"profile {key}  TOMBSTONE (merged away or erased)"
    computed = record["computed"]
    identifiers = ", ".join(f"{i['type']}:{i['value']}" for i in record["identifiers"])
    traits = ", ".join(f"{k}={v['value']!r}" for k, v in sorted(record["traits"].items()))
    revenue = ", ".join(f"{v:.2f} {c}" for c, v in sorted(computed["revenue"].items()))
    merged = f"  merged_from={','.join(record['merged_from'])}" if record["merged_from"] else ""
    return (
        f"profile {record['profile_id']} v{record['version']} {record['status']} "
        f"({record['cause']['kind']})  events={computed['event_count']} "
        f"orders={computed['order_count']} revenue=[{revenue}]{merged}\n"
        f"  identifiers: {identifiers}\n  traits: {traits or '-'}"
    )


def describe_change(_key: str, record: dict[str, Any] | None) -> str:
    if record is None:
        return "change: (empty)"
    identifiers = ", ".join(f"{i['type']}:{i['value']}" for i in record["identifiers"])
    other = f" other={record['other_profile_id']}" if record.get("other_profile_id") else ""
    reason = f" reason={record['reason']}" if record.get("reason") else ""
    return (
        f"{_time(record['at'])} {record['kind']:<20} profile={record['profile_id']}{other}"
        f"{reason}  [{identifiers}]"
    )


def _headers(record: TopicRecord) -> dict[str, str]:
    return {k: (v or b"").decode(errors="replace") for k, v in record.headers}


def run(args: argparse.Namespace) -> int:
    settings = Settings()
    topics = PipelineTopics.under(settings.topic_prefix)
    codec = AvroCodec.from_settings(settings)
    topic = {
        "profiles": topics.profile_updates,
        "changes": topics.identity_changelog,
        "dead-letters": topics.dead_letter,
    }[args.stream]
    describe: Callable[[str, dict[str, Any] | None], str] = (
        describe_profile if args.stream == "profiles" else describe_change
    )
    records = read_records(
        settings.kafka_client_config(),
        topic,
        from_beginning=args.from_beginning,
        idle_s=args.idle_exit,
    )
    shown = 0
    with closing(records):
        try:
            for record in records:
                print(_render(args, record, codec, describe), flush=True)
                shown += 1
                if args.limit and shown >= args.limit:
                    break
        except KeyboardInterrupt:
            pass
    return 0


def _render(
    args: argparse.Namespace,
    message: TopicRecord,
    codec: AvroCodec,
    describe: Callable[[str, dict[str, Any] | None], str],
) -> str:
    key = message.key
    if args.stream == "dead-letters":
        headers = _headers(message)
        if args.json:
            return json.dumps({"key": key, "size": len(message.value or b""), **headers})
        return (
            f"dead letter  reason={headers.get('reason')}  from {headers.get('source_topic')}"
            f"[{headers.get('source_partition')}]@{headers.get('source_offset')}  "
            f"{len(message.value or b'')} bytes  detail: {headers.get('detail')}"
        )
    record = None
    if message.value is not None:
        try:
            record = codec.decode(message.value).record
        except InvalidEvent as error:
            return f"undecodable record under key {key}: {error}"
    if args.json:
        return json.dumps({"key": key, "value": record}, default=str)
    return describe(key, record)
